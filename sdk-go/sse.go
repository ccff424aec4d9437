package poolswitch

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// Event is one server-sent event.
type Event struct {
	// Type is the event's "event" field; "" for the default type, "message".
	Type string
	// Data is the event's data lines, joined by "\n". OpenAI-style APIs end a stream with an
	// event whose Data is "[DONE]"; it is delivered like any other.
	Data string
	// ID is the last event ID seen on the stream so far (the "id" field of this event or of an
	// earlier one), as browsers' EventSource.lastEventId.
	ID string
}

const (
	sseBufferSize = 64 << 10
	// maxEventSize bounds one event (and one line) in memory.
	maxEventSize = 32 << 20
)

var bom = []byte("\xEF\xBB\xBF")

// sseParser decodes a text/event-stream incrementally (the WHATWG HTML "event stream
// interpretation"): an event is returned as soon as its terminating blank line has arrived.
// Lines end in CRLF, LF or CR; comments and unknown fields are skipped; an event cut off by
// the end of the stream is discarded.
type sseParser struct {
	r      *bufio.Reader
	line   []byte
	skipLF bool // the last line ended in CR: a LF right after it belongs to that line
	first  bool // no line read yet (a leading BOM is dropped)
	lastID string
}

func newSSEParser(r io.Reader) *sseParser {
	return &sseParser{r: bufio.NewReaderSize(r, sseBufferSize), first: true}
}

// next returns the next event, or the error that ended the stream (io.EOF at its clean end).
func (p *sseParser) next() (Event, error) {
	var (
		typ     string
		data    []byte
		hasData bool
	)
	for {
		line, err := p.readLine()
		if err != nil {
			return Event{}, err
		}
		if len(line) == 0 { // dispatch
			if !hasData {
				typ = ""
				continue
			}
			return Event{Type: typ, Data: string(data[:len(data)-1]), ID: p.lastID}, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			typ = string(value)
		case "data":
			if len(data)+len(value) >= maxEventSize {
				return Event{}, tooLarge()
			}
			data = append(data, value...)
			data = append(data, '\n')
			hasData = true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				p.lastID = string(value)
			}
		}
	}
}

// readLine returns the next line without its end; the slice is valid until the next call.
// It returns as soon as the line's end has arrived, never waiting for more input.
func (p *sseParser) readLine() ([]byte, error) {
	p.line = p.line[:0]
	for {
		if p.skipLF {
			b, err := p.r.ReadByte()
			if err != nil {
				return nil, err
			}
			p.skipLF = false
			if b != '\n' {
				_ = p.r.UnreadByte()
			}
		}
		if p.r.Buffered() == 0 {
			if _, err := p.r.Peek(1); err != nil {
				return nil, err // at io.EOF, a line without its end is discarded
			}
		}
		buf, _ := p.r.Peek(p.r.Buffered())
		i := bytes.IndexAny(buf, "\r\n")
		if i < 0 {
			if len(p.line)+len(buf) >= maxEventSize {
				return nil, tooLarge()
			}
			p.line = append(p.line, buf...)
			_, _ = p.r.Discard(len(buf))
			continue
		}
		if len(p.line)+i >= maxEventSize {
			return nil, tooLarge()
		}
		p.line = append(p.line, buf[:i]...)
		p.skipLF = buf[i] == '\r'
		_, _ = p.r.Discard(i + 1)
		if p.first {
			p.first = false
			p.line = bytes.TrimPrefix(p.line, bom)
		}
		return p.line, nil
	}
}

func tooLarge() error {
	return &Error{Kind: KindDecode, Message: fmt.Sprintf("an event or line is over %d bytes", maxEventSize)}
}
