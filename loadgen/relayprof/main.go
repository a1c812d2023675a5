// Command relayprof runs the relay library (relay/server) in-process with
// net/http/pprof on a separate loopback listener, so that heartline-load runs
// can be profiled:
//
//	go build -o /tmp/relayprof ./loadgen/relayprof
//	/tmp/relayprof -listen 127.0.0.1:8090 -pprof 127.0.0.1:6061 -data /tmp/hl-prof &
//	heartline-load fanout -url ws://127.0.0.1:8090/ws ... &
//	go tool pprof -top -seconds 15 http://127.0.0.1:6061/debug/pprof/profile
//
// It is a measuring harness, not a second relay binary: it exposes only the
// settings the load generator's scenarios need, and binds loopback only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/heartline/heartline/relay/server"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "relay listen address (loopback)")
	pprofAddr := flag.String("pprof", "127.0.0.1:6061", "pprof listen address (loopback)")
	data := flag.String("data", "", "data dir (history database); required")
	maxConns := flag.Int("max-conns", 0, "connection cap; 0 the relay default (the open-file limit less 5%), -1 none")
	maxRoom := flag.Int("max-room-members", 0, "members per room; 0 the relay default (1000)")
	rate := flag.Float64("rate", 0, "accepted messages per second per connection; 0 the relay default (5)")
	burst := flag.Int("burst", 0, "rate limiter bucket; 0 the relay default (10)")
	sendQueue := flag.Int("send-queue", 0, "frames queued per connection before 4001; 0 the relay default")
	mutexFrac := flag.Int("mutex-fraction", 0, "runtime.SetMutexProfileFraction (0 off)")
	blockRate := flag.Int("block-rate", 0, "runtime.SetBlockProfileRate in ns (0 off)")
	redisURL := flag.String("redis-url", "", "keep the rooms in this Redis (the Redis engine), e.g. redis://127.0.0.1:6379/0; empty: bbolt")
	flag.Parse()
	if *data == "" {
		fmt.Fprintln(os.Stderr, "relayprof: -data is required (a folder for the history database)")
		os.Exit(2)
	}
	for _, a := range []string{*listen, *pprofAddr} {
		host, _, err := net.SplitHostPort(a)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			fmt.Fprintf(os.Stderr, "relayprof: %q must be a loopback host:port\n", a)
			os.Exit(2)
		}
	}
	setProfileRates(*mutexFrac, *blockRate)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.New(server.Config{
		Listen: *listen, DataDir: *data, MaxConns: *maxConns, MaxRoomMembers: *maxRoom,
		Rate: *rate, Burst: *burst, SendQueue: *sendQueue, Logger: log,
		// The load generator is one host dialling from a few loopback addresses.
		MaxConnsPerIP: -1, MaxRoomMembersPerIP: -1,
		RedisURL: *redisURL, RedisAllowVolatile: true,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "relayprof: %v\n", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ps := &http.Server{Addr: *pprofAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := ps.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(os.Stderr, "relayprof: pprof listener: %v\n", err)
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "relayprof: relay on %s, pprof on http://%s/debug/pprof/\n", *listen, *pprofAddr)
	err = srv.Serve(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = ps.Shutdown(sctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "relayprof: %v\n", err)
		os.Exit(1)
	}
}

func setProfileRates(mutexFraction, blockRate int) {
	if mutexFraction > 0 {
		runtime.SetMutexProfileFraction(mutexFraction)
	}
	if blockRate > 0 {
		runtime.SetBlockProfileRate(blockRate)
	}
}
