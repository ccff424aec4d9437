package poolswitch

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// parseAll reads every event of input, handing the parser the input as chunked by wrap.
func parseAll(t *testing.T, input string, wrap func(io.Reader) io.Reader) ([]Event, error) {
	t.Helper()
	p := newSSEParser(wrap(strings.NewReader(input)))
	var events []Event
	for {
		ev, err := p.next()
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return events, err
		}
		events = append(events, ev)
	}
}

func TestSSEParser(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []Event
	}{
		{"one event", "data: hello\n\n", []Event{{Data: "hello"}}},
		{"two events", "data: a\n\ndata: b\n\n", []Event{{Data: "a"}, {Data: "b"}}},
		{"multi-line data", "data: a\ndata: b\ndata:\n\n", []Event{{Data: "a\nb\n"}}},
		{"no space after colon", "data:x\n\n", []Event{{Data: "x"}}},
		{"only one space removed", "data:  x \n\n", []Event{{Data: " x "}}},
		{"comments skipped", ": keep-alive\ndata: a\n: more\n\n:\n\n", []Event{{Data: "a"}}},
		{"event type", "event: delta\ndata: {}\n\ndata: plain\n\n", []Event{{Type: "delta", Data: "{}"}, {Data: "plain"}}},
		{"type without data is dropped", "event: ping\n\ndata: a\n\n", []Event{{Data: "a"}}},
		{"empty data line is an event", "data\n\n", []Event{{Data: ""}}},
		{"id carries over", "id: 1\ndata: a\n\ndata: b\n\nid: 7\ndata: c\n\nid\ndata: d\n\n",
			[]Event{{ID: "1", Data: "a"}, {ID: "1", Data: "b"}, {ID: "7", Data: "c"}, {ID: "", Data: "d"}}},
		{"id with NUL ignored", "id: 1\ndata: a\n\nid: x\x00y\ndata: b\n\n", []Event{{ID: "1", Data: "a"}, {ID: "1", Data: "b"}}},
		{"id without data still counts", "id: 5\n\ndata: a\n\n", []Event{{ID: "5", Data: "a"}}},
		{"CRLF", "event: e\r\ndata: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n", []Event{{Type: "e", Data: "a\nb"}, {Data: "c"}}},
		{"CR only", "data: a\rdata: b\r\rdata: c\r\r", []Event{{Data: "a\nb"}, {Data: "c"}}},
		{"mixed endings", "data: a\r\n\ndata: b\n\r\n", []Event{{Data: "a"}, {Data: "b"}}},
		{"unknown fields and retry skipped", "retry: 3000\nfoo: bar\ndata: a\n\n", []Event{{Data: "a"}}},
		{"field name is case-sensitive", "Data: a\n\n", nil},
		{"leading BOM", "\xEF\xBB\xBFdata: a\n\n", []Event{{Data: "a"}}},
		{"BOM only at the start", "data: a\n\n\xEF\xBB\xBFdata: b\n\n", []Event{{Data: "a"}}},
		{"colon in value", "data: {\"a\":\"b:c\"}\n\n", []Event{{Data: `{"a":"b:c"}`}}},
		{"unterminated event discarded", "data: a\n\ndata: b\n", []Event{{Data: "a"}}},
		{"unterminated line discarded", "data: a\n\ndata: b", []Event{{Data: "a"}}},
		{"OpenAI stream", "data: {\"choices\":[]}\n\ndata: [DONE]\n\n", []Event{{Data: `{"choices":[]}`}, {Data: "[DONE]"}}},
		{"empty", "", nil},
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"bytewise": iotest.OneByteReader,
		"halves":   iotest.HalfReader,
	}
	for _, tt := range tests {
		for rname, wrap := range readers {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				got, err := parseAll(t, tt.input, wrap)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("events = %#v\nwant     %#v", got, tt.want)
				}
			})
		}
	}
}

func TestSSELongLines(t *testing.T) {
	long := strings.Repeat("x", 3*sseBufferSize+17)
	got, err := parseAll(t, "data: "+long+"\ndata: "+long+"\n\n", func(r io.Reader) io.Reader { return r })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Data != long+"\n"+long {
		t.Errorf("long event lost: %d events", len(got))
	}
}

func TestSSETooLarge(t *testing.T) {
	tests := []struct {
		name  string
		input io.Reader
	}{
		{"one line", io.MultiReader(strings.NewReader("data: "), endless('x'))},
		{"many lines", endless('\n', 'd', 'a', 't', 'a', ':', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x')},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newSSEParser(tt.input).next()
			var e *Error
			if !errors.As(err, &e) || e.Kind != KindDecode {
				t.Fatalf("err = %v, want a KindDecode *Error", err)
			}
		})
	}
}

// endless repeats pattern forever.
func endless(pattern ...byte) io.Reader { return &repeater{pattern: pattern} }

type repeater struct {
	pattern []byte
	i       int
}

func (r *repeater) Read(b []byte) (int, error) {
	for n := range b {
		b[n] = r.pattern[r.i%len(r.pattern)]
		r.i++
	}
	return len(b), nil
}

// TestSSEIncremental checks that an event is returned as soon as its blank line arrives, even
// when the line ends in a lone CR whose LF (if any) has not arrived yet.
func TestSSEIncremental(t *testing.T) {
	tests := []struct {
		name  string
		first string
		rest  string
		want  []Event
	}{
		{"LF", "data: a\n\n", "data: b\n\n", []Event{{Data: "a"}, {Data: "b"}}},
		{"CRLF", "data: a\r\n\r\n", "data: b\r\n\r\n", []Event{{Data: "a"}, {Data: "b"}}},
		{"CR", "data: a\r\r", "\ndata: b\r\r", []Event{{Data: "a"}, {Data: "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			defer pr.Close()
			p := newSSEParser(pr)
			got := make(chan Event, 2)
			go func() {
				for {
					ev, err := p.next()
					if err != nil {
						close(got)
						return
					}
					got <- ev
				}
			}()
			_, _ = io.WriteString(pw, tt.first)
			select {
			case ev := <-got:
				if ev != tt.want[0] {
					t.Errorf("first event = %#v, want %#v", ev, tt.want[0])
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the first event was not returned before more input arrived")
			}
			_, _ = io.WriteString(pw, tt.rest)
			pw.Close()
			var rest []Event
			for ev := range got {
				rest = append(rest, ev)
			}
			if !reflect.DeepEqual(rest, tt.want[1:]) {
				t.Errorf("rest = %#v, want %#v", rest, tt.want[1:])
			}
		})
	}
}
