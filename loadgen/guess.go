package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/shared/protocol"
)

// guessMode measures what guessing a relay's token costs an attacker: from
// one source address it dials and says hello with a wrong token, one attempt
// after another, and counts how many guesses the relay answered (4500) and
// how many it refused unheard (HTTP 429 or close 4004 while the address is
// throttled).
func guessMode(fs *flag.FlagSet) func(ctx context.Context, e *env, c *common) (any, error) {
	duration := fs.Duration("duration", 5*time.Second, "how long to keep guessing")
	guess := fs.String("guess", "wrong-guess", "the wrong token every hello carries")
	return func(ctx context.Context, e *env, c *common) (any, error) {
		if err := c.oneRelay("guess", "measures one relay's throttle"); err != nil {
			return nil, err
		}
		res := guessResult{Duration: duration.Seconds(), Source: e.srcs[0].String()}
		dialer := websocket.Dialer{
			NetDialContext:   (&net.Dialer{LocalAddr: &net.TCPAddr{IP: e.srcs[0]}}).DialContext,
			HandshakeTimeout: 5 * time.Second,
		}
		end := time.Now().Add(*duration)
		for n := 0; time.Now().Before(end) && ctx.Err() == nil; n++ {
			res.Attempts++
			switch outcome := guessOnce(ctx, &dialer, e.url, *guess, n); outcome {
			case protocol.CloseUnauthorized:
				res.Answered++
			case http.StatusTooManyRequests, protocol.CloseThrottled:
				res.Throttled++
			default:
				res.Other++
			}
		}
		res.AnsweredPerSec = float64(res.Answered) / duration.Seconds()
		res.AttemptsPerSec = float64(res.Attempts) / duration.Seconds()
		fmt.Printf("guess: %d attempts in %s from %s (%.0f/s): %d wrong tokens answered (%.1f/s), %d refused unheard (throttled), %d other\n",
			res.Attempts, *duration, res.Source, res.AttemptsPerSec, res.Answered, res.AnsweredPerSec, res.Throttled, res.Other)
		return res, nil
	}
}

type guessResult struct {
	Source         string  `json:"source"`
	Duration       float64 `json:"duration_s"`
	Attempts       int     `json:"attempts"`
	Answered       int     `json:"answered"` // the relay compared the token: close 4500
	Throttled      int     `json:"throttled"`
	Other          int     `json:"other"`
	AttemptsPerSec float64 `json:"attempts_per_s"`
	AnsweredPerSec float64 `json:"answered_per_s"`
}

// guessOnce makes one attempt and returns the HTTP status that refused the
// upgrade, or the close code that ended the connection (0 for anything else).
func guessOnce(ctx context.Context, d *websocket.Dialer, url, token string, n int) int {
	ws, resp, err := d.DialContext(ctx, url, nil)
	if err != nil {
		if resp != nil {
			return resp.StatusCode
		}
		return 0
	}
	defer ws.Close()
	hello, _ := protocol.Encode(&protocol.Hello{V: protocol.Version, Room: "lobby", Name: fmt.Sprintf("guesser %d", n),
		Key: fmt.Sprintf("guessing-key-%012d", n), Token: token})
	if ws.WriteMessage(websocket.TextMessage, hello) != nil {
		return 0
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			return 0
		}
	}
}
