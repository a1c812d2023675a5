package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// killWriterEnv makes the test binary a writer that appends to a store
// without pause and prints "ack <member> <client> <seq> <ts>" for every
// record whose callback reported it durable, until it is killed.
const killWriterEnv = "HEARTLINE_STORE_KILL_WRITER_DIR"

const killHistory = 1 << 20 // keep everything: the test checks every ack

func init() { subprocessModes[killWriterEnv] = killWriterMain }

func killWriterMain() {
	s, err := Open(os.Getenv(killWriterEnv), Options{History: killHistory})
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(1)
	}
	if _, err := s.EnsureRoom("r"); err != nil {
		fmt.Println("ensure failed:", err)
		os.Exit(1)
	}
	var out sync.Mutex
	for w := range 8 {
		go func() {
			member := fmt.Sprint("w", w)
			done := make(chan struct{}, 64)
			for i := 0; ; i++ {
				// Up to 64 messages in flight per writer, like a client
				// pipelining its outbox.
				done <- struct{}{}
				s.AppendNext("r", Record{TS: time.Now().UnixMilli(), MemberID: member, ClientID: fmt.Sprint(i), Text: "x"},
					func(r Record, err error) {
						if err == nil {
							out.Lock()
							fmt.Fprintf(os.Stdout, "ack %s %s %d %d\n", r.MemberID, r.ClientID, r.Seq, r.TS)
							out.Unlock()
						}
						<-done
					})
			}
		}()
	}
	select {} // until SIGKILL
}

// TestEveryAckSurvivesSIGKILL kills a writing process at a random moment and
// checks that every record it reported durable is in the reopened store,
// once, in a gap-free seq order, with a consistent dedup index.
func TestEveryAckSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills a writer process; skipped with -short")
	}
	for round := range 3 {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), killWriterEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		type ack struct {
			seq uint64
			ts  int64
		}
		acked := map[[2]string]ack{}
		sc := bufio.NewScanner(stdout)
		target := 1000 + round*1500
		for sc.Scan() && len(acked) < target {
			f := strings.Fields(sc.Text())
			if len(f) != 5 || f[0] != "ack" {
				t.Fatalf("writer said %q", sc.Text())
			}
			seq, _ := strconv.ParseUint(f[3], 10, 64)
			ts, _ := strconv.ParseInt(f[4], 10, 64)
			acked[[2]string{f[1], f[2]}] = ack{seq, ts}
		}
		if err := cmd.Process.Kill(); err != nil { // SIGKILL on Unix
			t.Fatal(err)
		}
		// Acks printed before the kill landed count too.
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 5 {
				seq, _ := strconv.ParseUint(f[3], 10, 64)
				ts, _ := strconv.ParseInt(f[4], 10, 64)
				acked[[2]string{f[1], f[2]}] = ack{seq, ts}
			}
		}
		_ = cmd.Wait()
		if len(acked) < target {
			t.Fatalf("writer stopped after %d acks", len(acked))
		}

		s := openT(t, dir, Options{History: killHistory}) // Open also verifies pages and the index
		latest, _ := s.Seq("r")
		recs, complete, err := s.After("r", 0, 0)
		if err != nil || !complete || !equalSeqs(seqs(recs), seqRange(1, latest)) {
			t.Fatalf("round %d: after the kill: %d records up to seq %d, complete=%v, err=%v", round, len(recs), latest, complete, err)
		}
		seen := map[[2]string]bool{}
		for _, r := range recs {
			k := [2]string{r.MemberID, r.ClientID}
			if seen[k] {
				t.Fatalf("round %d: %v stored twice", round, k)
			}
			seen[k] = true
		}
		for k, a := range acked {
			r, ok, err := s.LookupID("r", k[0], k[1])
			if err != nil || !ok || r.Seq != a.seq || r.TS != a.ts {
				t.Fatalf("round %d: acked %v (seq %d) after the kill: %+v %v %v", round, k, a.seq, r, ok, err)
			}
		}
		t.Logf("round %d: %d acked, %d stored (the rest were in flight at the kill)", round, len(acked), latest)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
