// Command heartline-relay runs a Heartline relay: flags (each with an
// environment variable HEARTLINE_<NAME>) -> server.Config -> server.Serve.
// Everything else lives in relay/server.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
