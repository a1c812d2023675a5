package avatar

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

var hexName = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidHex reports whether s is a stored picture's name (64 lowercase hex).
func ValidHex(s string) bool { return hexName.MatchString(s) }

// Dir stores pictures content-addressed as <dir>/<hex>.png.
type Dir struct{ path string }

// OpenDir creates the folder if needed.
func OpenDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create the avatar folder %s: %w (check the --data-dir permissions)", path, err)
	}
	return &Dir{path: path}, nil
}

// Path returns the file of the picture named hex (which must be ValidHex).
func (d *Dir) Path(hex string) string { return filepath.Join(d.path, hex+".png") }

// Has reports whether the picture named hex is stored.
func (d *Dir) Has(hex string) bool {
	if !ValidHex(hex) {
		return false
	}
	_, err := os.Stat(d.Path(hex))
	return err == nil
}

// Save stores png under the hash of its bytes and returns that hash. Writing
// to a temporary file and renaming makes a half-written picture impossible to
// serve; saving the same picture twice is a no-op.
func (d *Dir) Save(png []byte) (string, error) {
	h := Hash(png)
	if d.Has(h) {
		return h, nil
	}
	f, err := os.CreateTemp(d.path, ".upload-*")
	if err != nil {
		return "", fmt.Errorf("store avatar: %w", err)
	}
	_, werr := f.Write(png)
	cerr := f.Close()
	if werr != nil || cerr != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("store avatar: %w", errors.Join(werr, cerr))
	}
	if err := os.Rename(f.Name(), d.Path(h)); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("store avatar: %w", err)
	}
	return h, nil
}
