package accounts

import (
	"net/http"

	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
)

// maxAuthBody bounds register and login bodies: a 32-byte username and a
// 128-byte password fit many times over even fully \u-escaped.
const maxAuthBody = 4 << 10

// Handler returns the service's HTTP API (paths in accountsapi). Unknown
// paths and wrong methods get coded JSON errors like everything else.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+accountsapi.PathRegister, s.handleRegister)
	mux.HandleFunc("POST "+accountsapi.PathLogin, s.handleLogin)
	mux.HandleFunc("GET "+accountsapi.PathMe, s.handleMe)
	// Method-less patterns catch the other methods of known paths; the
	// mux's own 405 answer is plain text, not a coded body.
	mux.HandleFunc(accountsapi.PathRegister, methodNotAllowed(http.MethodPost))
	mux.HandleFunc(accountsapi.PathLogin, methodNotAllowed(http.MethodPost))
	mux.HandleFunc(accountsapi.PathMe, methodNotAllowed(http.MethodGet, http.MethodHead))
	mux.HandleFunc("/", httpapi.NotFound)
	return mux
}

func methodNotAllowed(allowed ...string) http.HandlerFunc {
	allow := allowed[0]
	for _, m := range allowed[1:] {
		allow += ", " + m
	}
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		httpapi.WriteJSON(w, http.StatusMethodNotAllowed, httpapi.ErrorBody{
			Code:    apierr.MethodNotAllowed,
			Message: r.Method + " is not allowed on " + r.URL.Path + "; use " + allow,
		})
	}
}

// errPasswordAuthOff answers password endpoints on a cell that only takes
// platform logins.
func errPasswordAuthOff() error {
	return apierr.New(apierr.PermissionDenied, "username/password login is disabled on this cell")
}

func (s *Service) handleRegister(w http.ResponseWriter, r *http.Request) {
	var req accountsapi.RegisterRequest
	err := s.decodePasswordRequest(w, r, &req)
	var resp accountsapi.AuthResponse
	if err == nil {
		resp, err = s.register(r.Context(), req)
	}
	s.metrics.registration(err)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusCreated, resp)
}

func (s *Service) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req accountsapi.LoginRequest
	err := s.decodePasswordRequest(w, r, &req)
	var resp accountsapi.AuthResponse
	if err == nil {
		resp, err = s.login(r.Context(), req)
	}
	s.metrics.login(err)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, resp)
}

// decodePasswordRequest checks that password auth is on before reading the
// body, so a cell without it does not even parse credentials.
func (s *Service) decodePasswordRequest(w http.ResponseWriter, r *http.Request, v any) error {
	if !s.cfg.PasswordAuth {
		return errPasswordAuthOff()
	}
	return httpapi.Decode(w, r, v, maxAuthBody)
}

func (s *Service) handleMe(w http.ResponseWriter, r *http.Request) {
	tok, err := httpapi.BearerToken(r)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	playerID, err := s.authenticate(tok)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	me, err := s.me(r.Context(), playerID)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, me)
}
