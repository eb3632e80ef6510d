package placement

import (
	"strconv"
	"strings"

	"github.com/livecell/livecell/internal/apierr"
)

// Bounds of a client's RTT report.
const (
	// MaxRTTs is the most entries one report may carry: one per region a
	// deployment could plausibly span, with room to spare.
	MaxRTTs = 32
	// MaxRTTMS is the largest RTT accepted: a round trip slower than ten
	// seconds is a broken measurement, not a placement input.
	MaxRTTMS = 10_000
	// MaxKeyLen bounds a key: cell ids are at most 32 bytes, cloud region
	// names shorter than 64.
	MaxKeyLen = 64
	// maxValueLen bounds a value's text: "10000.000".
	maxValueLen = 9
)

// ParseRTTs parses a client's report, "key:ms,key:ms,...", where key is a
// cell id or a cloud region and ms a non-negative decimal number of
// milliseconds (at most three decimals). The empty string is no report.
// Every malformed report is an apierr.BadRequest error naming the problem:
// a bad key, a duplicate key (in any case), a negative, absurd or
// non-numeric RTT, or too many entries. Keys that name no cell are not
// errors: a client's list of regions may be older than cells.yaml.
func ParseRTTs(s string) ([]RTT, error) {
	if s == "" {
		return nil, nil
	}
	n := strings.Count(s, ",") + 1
	if n > MaxRTTs {
		return nil, apierr.New(apierr.BadRequest, "rtt has %d entries; at most %d", n, MaxRTTs)
	}
	out := make([]RTT, 0, n)
	// Messages name entries by position: a malformed entry is never echoed
	// back, so an error cannot carry whatever a client stuffed into it.
	i := 0
	for entry := range strings.SplitSeq(s, ",") {
		i++
		key, val, ok := strings.Cut(entry, ":")
		if !ok {
			return nil, apierr.New(apierr.BadRequest, "rtt entry %d: want key:milliseconds", i)
		}
		if err := CheckKey(key); err != nil {
			return nil, apierr.New(apierr.BadRequest, "rtt entry %d: key %s", i, apierr.MessageOf(err))
		}
		for _, r := range out {
			if strings.EqualFold(r.Key, key) {
				return nil, apierr.New(apierr.BadRequest, "rtt key %q given twice", key)
			}
		}
		ms, err := parseMS(val)
		if err != nil {
			return nil, apierr.New(apierr.BadRequest, "rtt for %q: %s", key, apierr.MessageOf(err))
		}
		out = append(out, RTT{Key: key, MS: ms})
	}
	return out, nil
}

// CheckKey accepts a cell id or cloud region name: letters, digits, '-',
// '_' and '.', at most MaxKeyLen bytes, so it can be logged and compared
// without escaping worries. The empty key is refused.
func CheckKey(s string) error {
	if s == "" {
		return apierr.New(apierr.BadRequest, "empty cell id or region")
	}
	if len(s) > MaxKeyLen {
		return apierr.New(apierr.BadRequest, "longer than %d bytes", MaxKeyLen)
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_' || b == '.') {
			return apierr.New(apierr.BadRequest, "not a cell id or region name (letters, digits, '-', '_', '.')")
		}
	}
	return nil
}

// parseMS reads "12", "12.5" or "0.125": digits, at most one '.', at most
// three decimals. strconv.ParseFloat alone would also take "1e3", "0x1p3",
// "Inf" and "NaN".
func parseMS(s string) (float64, error) {
	if strings.HasPrefix(s, "-") {
		return 0, apierr.New(apierr.BadRequest, "negative round-trip time")
	}
	if s == "" || len(s) > maxValueLen {
		return 0, apierr.New(apierr.BadRequest, "want milliseconds from 0 to %d", MaxRTTMS)
	}
	dot := -1
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b >= '0' && b <= '9':
		case b == '.' && dot < 0 && i > 0 && i < len(s)-1:
			dot = i
		default:
			return 0, apierr.New(apierr.BadRequest, "want milliseconds as a decimal number, like 23 or 23.5")
		}
	}
	if dot >= 0 && len(s)-dot-1 > 3 {
		return 0, apierr.New(apierr.BadRequest, "at most three decimals (microseconds)")
	}
	ms, err := strconv.ParseFloat(s, 64)
	if err != nil || ms > MaxRTTMS {
		return 0, apierr.New(apierr.BadRequest, "round-trip time above %d ms is not a measurement", MaxRTTMS)
	}
	return ms, nil
}
