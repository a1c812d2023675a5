package wsconn

import (
	"bufio"
	"net"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"
)

// ReadBufferSize is each connection's bufio read buffer: the smallest gorilla
// accepts as its reader (more than 256 bytes), a whole size class. Larger
// frames are read through it.
const ReadBufferSize = 288

// NewUpgrader is the upgrader the transport's assumptions (doc.go) hold
// for; the caller sets CheckOrigin and Error.
func NewUpgrader() websocket.Upgrader {
	return websocket.Upgrader{
		// Small read buffers: an idle member costs memory, a big frame is
		// read straight through. ReadBufferSize 0 makes gorilla use the
		// hijacked bufio.Reader, which HijackWriter sizes to ReadBufferSize.
		// Write buffers come from a pool and are held only while a frame is
		// being written (the transport frames its own writes, so never).
		ReadBufferSize:  0,
		WriteBufferSize: 4096,
		WriteBufferPool: &sync.Pool{},
	}
}

// HijackWriter wraps the hijacked connection in a BatchConn, so that the
// reactor can read it and the writer batch its frames into one syscall.
// Pass it to Upgrade instead of the http.ResponseWriter.
type HijackWriter struct {
	http.ResponseWriter
	wrapped *BatchConn
}

// Wrapped is the socket gorilla got, after Upgrade.
func (h *HijackWriter) Wrapped() *BatchConn { return h.wrapped }

func (h *HijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.wrapped = NewBatchConn(nc)
	if brw.Reader.Buffered() > 0 {
		return h.wrapped, brw, nil // gorilla refuses the upgrade
	}
	// gorilla reads through the bufio.Reader it is handed when the upgrader's
	// ReadBufferSize is 0: a small one of ours (net/http's is 4 KiB), which
	// the reader needs to see into before it parks.
	h.wrapped.br = bufio.NewReaderSize(h.wrapped, ReadBufferSize)
	return h.wrapped, bufio.NewReadWriter(h.wrapped.br, brw.Writer), nil
}
