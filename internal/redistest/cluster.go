package redistest

import (
	"strconv"
	"testing"
	"time"
)

// StartCluster runs a Redis Cluster of n masters (no replicas), each a
// Server as Start makes them, the 16384 slots split evenly, and waits
// until every node reports the cluster ok. A relay given any node's URL
// finds the others.
func StartCluster(t testing.TB, n int, opt Options) []*Server {
	t.Helper()
	nodes := make([]*Server, n)
	buses := make([]int, n)
	for i := range nodes {
		bus, err := freePort()
		if err != nil {
			t.Fatalf("redistest: find a free port for the cluster bus: %v", err)
		}
		buses[i] = bus
		o := opt
		o.Config = append(append([]string(nil), opt.Config...),
			"cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout 5000",
			"cluster-port "+strconv.Itoa(bus))
		nodes[i] = Start(t, o)
	}
	const slots = 16384
	for i, node := range nodes {
		from, to := i*slots/n, (i+1)*slots/n-1
		if _, err := node.Do("CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(from), strconv.Itoa(to)); err != nil {
			t.Fatalf("redistest: CLUSTER ADDSLOTSRANGE on %s: %v", node.Addr, err)
		}
		if i > 0 {
			if _, err := node.Do("CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(nodes[0].port), strconv.Itoa(buses[0])); err != nil {
				t.Fatalf("redistest: CLUSTER MEET from %s: %v", node.Addr, err)
			}
		}
	}
	deadline := time.Now().Add(startTimeout)
	for _, node := range nodes {
		for {
			info, err := node.Do("CLUSTER", "INFO")
			if err == nil && infoField(info, "cluster_state") == "ok" && infoField(info, "cluster_known_nodes") == strconv.Itoa(n) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: the cluster did not form within %s: %s says %q, %v", startTimeout, node.Addr, info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nodes
}
