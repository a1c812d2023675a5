package avatar

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxDecodeCost is the most memory one upload's decode may take, in bytes.
// The standard library's decoders allocate the whole bitmap (and a
// progressive JPEG four bytes per pixel and channel of coefficients on top),
// so a 200 KiB file can cost 300 MiB; a 128 px avatar needs nothing near
// that. 32 MiB still admits a 1920x1080 progressive JPEG without chroma
// subsampling (31 MiB), the most expensive common form of a 2 MP photo.
const MaxDecodeCost = 32 << 20

// header is what a picture's header says about the cost of decoding it.
type header struct {
	format        string // "png" or "jpeg"
	width, height int
	kind          string // for messages: "progressive JPEG", "16-bit RGBA PNG"...
	cost          int64  // bytes the standard library's decoder allocates for it
}

// decoderOverhead covers what a decoder allocates besides pixels: Huffman
// and quantisation tables, zlib's window, bufio buffers.
const decoderOverhead = 256 << 10

var (
	pngSignature  = []byte("\x89PNG\r\n\x1a\n")
	jpegSignature = []byte("\xff\xd8")
)

// inspect reads only the header of a PNG or JPEG and estimates what the
// standard library's decoder will allocate, following what image/png and
// image/jpeg actually do (see the comments of each case). It errs on the high
// side where the header alone cannot tell.
func inspect(data []byte) (header, error) {
	switch {
	case len(data) >= len(pngSignature) && string(data[:len(pngSignature)]) == string(pngSignature):
		return inspectPNG(data)
	case len(data) >= len(jpegSignature) && string(data[:len(jpegSignature)]) == string(jpegSignature):
		return inspectJPEG(data)
	}
	return header{}, errors.New("unknown file signature")
}

// inspectPNG reads IHDR, which the PNG format puts first.
func inspectPNG(data []byte) (header, error) {
	const ihdrEnd = 8 + 8 + 13
	if len(data) < ihdrEnd || string(data[12:16]) != "IHDR" {
		return header{}, errors.New("PNG without a header chunk")
	}
	w := binary.BigEndian.Uint32(data[16:20])
	h := binary.BigEndian.Uint32(data[20:24])
	depth, colorType, interlace := int(data[24]), data[25], data[28]
	if w == 0 || h == 0 || w > 1<<24 || h > 1<<24 {
		return header{}, fmt.Errorf("PNG claims %dx%d pixels", w, h)
	}
	// image/png decodes into Gray/Paletted (1 byte), RGBA/NRGBA (4), Gray16
	// (2) or RGBA64/NRGBA64 (8); a tRNS chunk turns gray and truecolor into
	// NRGBA(64), so count gray as if it had one.
	var bytesPerPixel int64
	name := map[byte]string{0: "gray", 2: "RGB", 3: "paletted", 4: "gray+alpha", 6: "RGBA"}[colorType]
	switch {
	case name == "":
		return header{}, fmt.Errorf("PNG colour type %d does not exist", colorType)
	case colorType == 3:
		bytesPerPixel = 1
	case depth == 16:
		bytesPerPixel = 8
	default:
		bytesPerPixel = 4
	}
	pixels := int64(w) * int64(h)
	cost := pixels * bytesPerPixel
	kind := fmt.Sprintf("%d-bit %s PNG", depth, name)
	if interlace == 1 {
		// Each Adam7 pass is decoded into an image of its own, then merged.
		cost *= 2
		kind = "interlaced " + kind
	}
	// Two rows of raw scanline bytes (current and previous) for the filters.
	cost += 2*(int64(w)*8+1) + decoderOverhead
	return header{format: "png", width: int(w), height: int(h), kind: kind, cost: cost}, nil
}

// inspectJPEG walks the markers up to the frame header (SOF) the way
// image/jpeg does (skipping extraneous bytes and fill bytes), so that both
// find the same frame header.
func inspectJPEG(data []byte) (header, error) {
	jfif := false
	for i := 2; ; {
		for i < len(data) && data[i] != 0xff {
			i++ // extraneous data, which image/jpeg ignores
		}
		for i < len(data) && data[i] == 0xff {
			i++ // fill bytes
		}
		if i >= len(data) {
			return header{}, errors.New("JPEG without a frame header")
		}
		marker := data[i]
		i++
		if marker == 0x00 || (marker >= 0xd0 && marker <= 0xd7) {
			continue // escaped 0xff and restart markers: no length
		}
		if marker == 0xd9 || marker == 0xda || i+2 > len(data) {
			return header{}, errors.New("JPEG without a frame header before its image data")
		}
		n := int(binary.BigEndian.Uint16(data[i:]))
		if n < 2 || i+n > len(data) {
			return header{}, errors.New("JPEG marker segment runs past the end of the file")
		}
		seg := data[i+2 : i+n]
		i += n
		switch {
		case marker == 0xe0 && len(seg) >= 5 && string(seg[:5]) == "JFIF\x00":
			jfif = true
		case marker == 0xc0 || marker == 0xc1 || marker == 0xc2:
			return jpegFrame(seg, marker == 0xc2, jfif)
		case marker >= 0xc3 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc:
			return header{}, errors.New("lossless, hierarchical and arithmetic-coded JPEGs are not supported")
		}
	}
}

// jpegFrame estimates image/jpeg's allocations from the frame header: the
// image planes padded to whole MCUs (64 bytes per 8x8 block), for a
// progressive JPEG a [64]int32 per block of coefficients (256 bytes), and
// an RGBA or CMYK copy when the colour model may need converting.
func jpegFrame(sof []byte, progressive, jfif bool) (header, error) {
	if len(sof) < 6 {
		return header{}, errors.New("JPEG frame header is too short")
	}
	if sof[0] != 8 {
		return header{}, fmt.Errorf("%d-bit JPEG samples are not supported", sof[0])
	}
	h := int(binary.BigEndian.Uint16(sof[1:3]))
	w := int(binary.BigEndian.Uint16(sof[3:5]))
	nComp := int(sof[5])
	if (nComp != 1 && nComp != 3 && nComp != 4) || len(sof) < 6+3*nComp {
		return header{}, fmt.Errorf("JPEG with %d colour components is not supported", nComp)
	}
	if w == 0 || h == 0 {
		return header{}, fmt.Errorf("JPEG claims %dx%d pixels", w, h)
	}
	type sampling struct{ h, v int }
	comps := make([]sampling, nComp)
	for c := range comps {
		hv := sof[7+3*c]
		comps[c] = sampling{max(int(hv>>4), 1), max(int(hv&0x0f), 1)}
	}
	if nComp == 1 {
		comps[0] = sampling{1, 1} // image/jpeg treats a lone component as 1x1
	}
	mcusX := int64((w + 8*comps[0].h - 1) / (8 * comps[0].h))
	mcusY := int64((h + 8*comps[0].v - 1) / (8 * comps[0].v))
	var blocks int64
	for _, c := range comps {
		blocks += mcusX * mcusY * int64(c.h*c.v)
	}
	cost := 64*blocks + decoderOverhead
	kind := "JPEG"
	if progressive {
		cost += 256 * blocks
		kind = "progressive JPEG"
	}
	// Without a JFIF marker, an Adobe marker (which may come after the
	// frame header) or R, G, B component ids make image/jpeg convert a
	// three-component picture to RGBA; assume it will.
	if nComp == 4 || (nComp == 3 && !jfif) {
		cost += 4 * int64(w) * int64(h)
	}
	return header{format: "jpeg", width: w, height: h, kind: kind, cost: cost}, nil
}
