package protocol

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// addSeeds seeds a fuzz target with every golden frame and the hand-written
// malformed frames in testdata/malformed.
func addSeeds(f *testing.F) {
	for _, dir := range []string{"golden", "malformed"} {
		paths, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
		if err != nil || len(paths) == 0 {
			f.Fatalf("no seeds in testdata/%s: %v", dir, err)
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	// Structurally fine but odd: NUL and a lone surrogate (decoded as U+FFFD).
	f.Add([]byte(`{"type":"msg","id":"c\u0000","text":"\ud800"}`))
}

// fuzzDecode checks the properties every decoder must keep on any input: no
// panic; a refusal is a FrameError with a known code and a message; a frame it
// accepts survives Encode and decodes to the same value.
func fuzzDecode(t *testing.T, data []byte, decode func([]byte) (Frame, error)) {
	fr, err := decode(data)
	if err != nil {
		var fe *FrameError
		if !errors.As(err, &fe) {
			t.Fatalf("decode returned %T %v, want *FrameError", err, err)
		}
		if fe.Message == "" {
			t.Fatalf("decode refused with %+v", fe)
		}
		switch fe.Close {
		case 0:
			if fe.Code != ErrBadFrame && fe.Code != ErrUnknownType {
				t.Fatalf("decode refused with %+v", fe)
			}
		case CloseHelloRefused: // a hello with a field of the wrong type
			switch fe.Code {
			case ErrBadFrame, ErrBadName, ErrBadRoom, ErrBadKey, ErrBadAvatar:
			default:
				t.Fatalf("decode refused with %+v", fe)
			}
		case CloseUnsupportedVersion:
			if fe.Code != ErrBadFrame {
				t.Fatalf("decode refused with %+v", fe)
			}
		default:
			t.Fatalf("decode refused with %+v", fe)
		}
		return
	}
	out, err := Encode(fr)
	if err != nil {
		t.Fatalf("Encode(%#v): %v", fr, err)
	}
	back, err := decode(out)
	if err != nil {
		t.Fatalf("re-decoding %s: %v", out, err)
	}
	if !reflect.DeepEqual(normalize(back), normalize(fr)) {
		t.Fatalf("round trip changed the frame:\n in %#v\nout %#v", fr, back)
	}
}

func FuzzDecodeClient(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, data, DecodeClient) })
}

func FuzzDecodeRelay(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, data, DecodeRelay) })
}

func TestMalformedSeedsAreRefused(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "malformed", "*.json"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if fr, err := DecodeClient(b); err == nil {
			t.Errorf("%s decoded as %#v; it is there to be refused", p, fr)
		}
	}
}
