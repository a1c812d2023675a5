// Package chatview is the desktop app's view model: the pure logic behind what a
// person sees in a room, kept free of Fyne and of the network so that it can be
// tested without a window or a relay.
//
// It orders messages (relay seq, own messages still in the outbox at the end),
// groups consecutive messages from one sender, inserts day separators and
// "messages missing" markers, words the connection status, decides when the
// reconnecting banner may appear, counts unread messages, tracks whether the
// message list sits at the bottom, sorts the member list and derives avatar
// initials and colours.
package chatview
