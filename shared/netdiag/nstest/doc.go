// Package nstest holds netdiag's network-namespace tests: a client namespace
// behind a NAT namespace, and a relay namespace with two addresses, all in
// 198.18.0.0/15. They need root, ip and iptables, and skip with a message
// otherwise. The test binary re-executes itself inside the namespaces (ip
// netns exec) with HEARTLINE_NSTEST_ROLE naming the part it plays. It is
// test-only: nothing imports it, which is why it may use the relay.
package nstest
