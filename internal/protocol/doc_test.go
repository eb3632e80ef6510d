package protocol

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/livecell/livecell/internal/apierr"
)

// docPath is the protocol specification. Other implementations are written
// from it, so it must list every opcode and error code the code defines,
// with the same facts.
const docPath = "../../docs/protocol.md"

// tableRows returns the cells of the markdown table rows whose first cell
// starts with prefix (e.g. "`0x" for the opcode table).
func tableRows(doc, prefix string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(doc, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if strings.HasPrefix(cells[0], prefix) {
			rows = append(rows, cells)
		}
	}
	return rows
}

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("read the specification: %v", err)
	}
	return string(b)
}

func TestDocListsEveryOpcode(t *testing.T) {
	doc := readDoc(t)
	rows := map[string][]string{} // hex → cells
	for _, cells := range tableRows(doc, "`0x") {
		rows[strings.Trim(cells[0], "`")] = cells
	}
	for _, oi := range Ops() {
		cells, ok := rows[oi.Op.Hex()]
		if !ok {
			t.Errorf("%s: opcode %s (%s) has no row in the opcode table", docPath, oi.Op.Hex(), oi.Name)
			continue
		}
		if len(cells) < 3 {
			t.Errorf("%s: opcode row %s has %d cells, want at least 3", docPath, oi.Op.Hex(), len(cells))
			continue
		}
		if got, want := cells[1], "`"+oi.Name+"`"; got != want {
			t.Errorf("%s: opcode %s is named %s, want %s", docPath, oi.Op.Hex(), got, want)
		}
		if got := cells[2]; got != string(oi.Service) {
			t.Errorf("%s: opcode %s has service %q, want %q", docPath, oi.Op.Hex(), got, oi.Service)
		}
		delete(rows, oi.Op.Hex())
	}
	for hex := range rows {
		t.Errorf("%s: opcode table lists %s, which protocol.Ops() does not define", docPath, hex)
	}
}

func TestDocListsEveryErrorCode(t *testing.T) {
	doc := readDoc(t)
	rows := map[apierr.Code][]string{}
	for _, cells := range tableRows(doc, "`") {
		// The error table: code, HTTP, retryable, closes, meaning.
		if len(cells) == 5 && !strings.HasPrefix(cells[0], "`0x") {
			rows[apierr.Code(strings.Trim(cells[0], "`"))] = cells
		}
	}
	for _, code := range apierr.Codes() {
		cells, ok := rows[code]
		if !ok {
			t.Errorf("%s: error code %q has no row in the error table", docPath, code)
			continue
		}
		if got, err := strconv.Atoi(cells[1]); err != nil || got != code.HTTPStatus() {
			t.Errorf("%s: %s has HTTP %q, want %d", docPath, code, cells[1], code.HTTPStatus())
		}
		want := "no"
		if code.Retryable() {
			want = "yes"
		}
		if cells[2] != want {
			t.Errorf("%s: %s has retryable %q, want %q", docPath, code, cells[2], want)
		}
		switch cells[3] {
		case "yes", "no", "on Hello", "—":
		default:
			t.Errorf("%s: %s has closes %q, want yes, no, on Hello or —", docPath, code, cells[3])
		}
		if cells[4] == "" {
			t.Errorf("%s: %s has no meaning", docPath, code)
		}
		delete(rows, code)
	}
	for code := range rows {
		t.Errorf("%s: error table lists %q, which apierr does not define", docPath, code)
	}
}

// The limits are part of the wire contract; the document states them.
func TestDocStatesLimits(t *testing.T) {
	doc := readDoc(t)
	for _, want := range []string{
		strconv.Itoa(DefaultMaxFrame),
		strconv.Itoa(HardMaxFrame),
		"testdata/vectors",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("%s does not mention %q", docPath, want)
		}
	}
}
