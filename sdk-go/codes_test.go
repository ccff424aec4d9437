package poolswitch

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// proxyCodes is every code the proxy makes (docs/protocol.md): the SDK has a constant for each.
var proxyCodes = []string{
	"no_available_keys", "upstream_unavailable", "overloaded", "upstream_unreachable",
	"upstream_timeout", "payload_too_large", "bad_request", "unauthorized", "forbidden",
	"headers_too_large", "not_found", "no_such_pool", "caller_rate_limited", "internal_error",
}

// codeConstants reads the Code* constants of errors.go: name -> value.
func codeConstants(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && strings.HasPrefix(name.Name, "Code") {
					out[name.Name], _ = strconv.Unquote(lit.Value)
				}
			}
		}
	}
	return out
}

// TestEveryProxyCodeHasAConstantAndIsDocumented checks the Code* constants against the
// proxy's codes, and that README.md and doc.go name each one.
func TestEveryProxyCodeHasAConstantAndIsDocumented(t *testing.T) {
	consts := codeConstants(t)
	values := map[string]string{}
	for name, v := range consts {
		values[v] = name
	}
	if len(consts) != len(proxyCodes) {
		t.Errorf("%d Code constants, want %d: %v", len(consts), len(proxyCodes), consts)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range proxyCodes {
		name, ok := values[code]
		if !ok {
			t.Errorf("no Code constant for %q", code)
			continue
		}
		for file, text := range map[string]string{"README.md": string(readme), "doc.go": string(doc)} {
			if !strings.Contains(text, name) || !strings.Contains(text, code) {
				t.Errorf("%s does not name %s (%q)", file, name, code)
			}
		}
	}
}
