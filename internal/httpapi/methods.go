package httpapi

import (
	"net/http"
	"strings"

	"github.com/livecell/livecell/internal/apierr"
)

// MethodNotAllowed answers a request for a known path with a method it does
// not serve: 405 with an Allow header and a coded body (the mux's own 405
// is plain text). Register it with a method-less pattern next to the
// method-qualified ones.
func MethodNotAllowed(allowed ...string) http.HandlerFunc {
	allow := strings.Join(allowed, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		WriteJSON(w, http.StatusMethodNotAllowed, ErrorBody{
			Code:    apierr.MethodNotAllowed,
			Message: r.Method + " is not allowed on " + r.URL.Path + "; use " + allow,
		})
	}
}
