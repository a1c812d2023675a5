package client_test

import (
	"context"
	"fmt"
	"log"

	"github.com/heartline/heartline/shared/client"
)

// A UI creates one client per room, runs it, renders its events, and
// calls Send when the person presses Enter.
func Example() {
	outbox, err := client.NewFileOutbox("/home/ann/.config/heartline/lobby.outbox.json")
	if err != nil {
		log.Fatal(err) // a damaged file: the error says what to do
	}
	c, err := client.New(client.Config{
		URL:    "relay.example.org:8080",
		Room:   "lobby",
		Name:   "ann",
		Key:    client.NewKey(), // in a real app: made once, kept with the settings
		Client: "example/1.0",
		Outbox: outbox,
	})
	if err != nil {
		log.Fatal(err) // names the setting that is wrong
	}
	go func() {
		for ev := range c.Events() { // closed after Run returns
			switch ev := ev.(type) {
			case client.StateChanged:
				fmt.Println("status:", ev.State.Phase, ev.State.LastError, ev.State.StopReason)
			case client.MessageReceived:
				fmt.Printf("%s: %s\n", ev.Msg.From.Name, ev.Msg.Text)
			case client.HistoryGap:
				fmt.Println(ev.Text())
			case client.OutboxChanged:
				if ev.Item.Status == client.Failed {
					fmt.Println("not sent:", ev.Item.Reason)
				}
			}
		}
	}()
	c.Send("hello, room") // works offline too: it waits in the outbox
	if err := c.Run(context.Background()); err != nil {
		log.Println(err) // a *client.StopError says what the person should do
	}
}
