package accounts

import (
	"context"
	"net/http"

	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
)

// Request body bounds. Each fits its largest valid request many times over,
// even fully \u-escaped, and anything bigger is refused unread.
const (
	// maxAuthBody: a 32-byte username and a 128-byte password.
	maxAuthBody = 4 << 10
	// maxPlatformBody: a ticket or ID token of up to maxTicketLen.
	maxPlatformBody = 2 * maxTicketLen
	// maxTokenBody: a 43-character refresh token.
	maxTokenBody = 1 << 10
)

// Handler returns the service's HTTP API (paths in accountsapi). Unknown
// paths and wrong methods get coded JSON errors like everything else.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+accountsapi.PathRegister, signIn(s, maxAuthBody, s.passwordEnabled, s.metrics.registration, s.register))
	mux.HandleFunc("POST "+accountsapi.PathLogin, signIn(s, maxAuthBody, s.passwordEnabled, s.metrics.login, s.login))
	mux.HandleFunc("POST "+accountsapi.PathSteamLogin, signIn(s, maxPlatformBody,
		func() error { return s.platformEnabled(accountsapi.ProviderSteam) }, nil,
		func(ctx context.Context, a *attempt, req accountsapi.SteamLoginRequest) (accountsapi.AuthResponse, error) {
			resp, err := s.platformLogin(ctx, a, accountsapi.ProviderSteam, req.Ticket)
			s.metrics.platformLogin(accountsapi.ProviderSteam, resp.NewAccount, err)
			return resp, err
		}))
	mux.HandleFunc("POST "+accountsapi.PathEpicLogin, signIn(s, maxPlatformBody,
		func() error { return s.platformEnabled(accountsapi.ProviderEpic) }, nil,
		func(ctx context.Context, a *attempt, req accountsapi.EpicLoginRequest) (accountsapi.AuthResponse, error) {
			resp, err := s.platformLogin(ctx, a, accountsapi.ProviderEpic, req.IDToken)
			s.metrics.platformLogin(accountsapi.ProviderEpic, resp.NewAccount, err)
			return resp, err
		}))
	mux.HandleFunc("POST "+accountsapi.PathRefresh, signIn(s, maxTokenBody, nil, nil, s.refresh))
	mux.HandleFunc("POST "+accountsapi.PathLogout, s.handleLogout)
	mux.HandleFunc("GET "+accountsapi.PathMe, s.handleMe)
	mux.HandleFunc("POST "+accountsapi.PathIdentities, s.handleLink)
	mux.HandleFunc("DELETE "+accountsapi.PathIdentities+"/{provider}", s.handleUnlink)
	// Method-less patterns catch the other methods of known paths; the
	// mux's own 405 answer is plain text, not a coded body.
	for _, path := range []string{
		accountsapi.PathRegister, accountsapi.PathLogin, accountsapi.PathSteamLogin, accountsapi.PathEpicLogin,
		accountsapi.PathRefresh, accountsapi.PathLogout, accountsapi.PathIdentities,
	} {
		mux.HandleFunc(path, methodNotAllowed(http.MethodPost))
	}
	mux.HandleFunc(accountsapi.PathMe, methodNotAllowed(http.MethodGet, http.MethodHead))
	mux.HandleFunc(accountsapi.PathIdentities+"/{provider}", methodNotAllowed(http.MethodDelete))
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

// passwordEnabled answers password endpoints on a cell that only takes
// platform logins, before their body is even parsed.
func (s *Service) passwordEnabled() error {
	if !s.cfg.PasswordAuth {
		return apierr.New(apierr.PermissionDenied, "username/password login is disabled on this cell")
	}
	return nil
}

// signIn is the shape of every endpoint that answers an AuthResponse:
// enabled refuses a switched-off method before anything else; the source
// address is rate limited before the body is read; a failed attempt is
// charged extra; record (optional) counts the result. A response for a new
// account is 201 Created, any other 200.
func signIn[Req any](s *Service, maxBody int64, enabled func() error, record func(error),
	fn func(context.Context, *attempt, Req) (accountsapi.AuthResponse, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		resp, err := func() (accountsapi.AuthResponse, error) {
			if enabled != nil {
				if err := enabled(); err != nil {
					return accountsapi.AuthResponse{}, err
				}
			}
			a, err := s.begin(r)
			if err != nil {
				return accountsapi.AuthResponse{}, err
			}
			var req Req
			if err := httpapi.Decode(w, r, &req, maxBody); err != nil {
				return accountsapi.AuthResponse{}, err
			}
			resp, err := fn(r.Context(), a, req)
			a.done(err)
			return resp, err
		}()
		if record != nil {
			record(err)
		}
		if err != nil {
			httpapi.WriteError(w, r, s.log, err)
			return
		}
		status := http.StatusOK
		if resp.NewAccount {
			status = http.StatusCreated
		}
		httpapi.WriteJSON(w, status, resp)
	}
}

func (s *Service) handleLogout(w http.ResponseWriter, r *http.Request) {
	err := func() error {
		if _, err := s.begin(r); err != nil {
			return err
		}
		var req accountsapi.LogoutRequest
		if err := httpapi.Decode(w, r, &req, maxTokenBody); err != nil {
			return err
		}
		return s.logout(r.Context(), req)
	}()
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// bearer authenticates r's access token and returns its player id.
func (s *Service) bearer(r *http.Request) (string, error) {
	tok, err := httpapi.BearerToken(r)
	if err != nil {
		return "", err
	}
	return s.authenticate(tok)
}

func (s *Service) handleMe(w http.ResponseWriter, r *http.Request) {
	playerID, err := s.bearer(r)
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

// handleLink links a platform account: 201 with the identity when linked
// now, 200 when it already was. The access token is checked before the
// rate limit and the body, so an anonymous caller costs one signature check.
func (s *Service) handleLink(w http.ResponseWriter, r *http.Request) {
	id, created, err := func() (accountsapi.Identity, bool, error) {
		playerID, err := s.bearer(r)
		if err != nil {
			return accountsapi.Identity{}, false, err
		}
		a, err := s.begin(r)
		if err != nil {
			return accountsapi.Identity{}, false, err
		}
		var req accountsapi.LinkRequest
		if err := httpapi.Decode(w, r, &req, maxPlatformBody); err != nil {
			return accountsapi.Identity{}, false, err
		}
		id, created, err := s.link(r.Context(), a, playerID, req)
		a.done(err)
		return id, created, err
	}()
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpapi.WriteJSON(w, status, id)
}

func (s *Service) handleUnlink(w http.ResponseWriter, r *http.Request) {
	playerID, err := s.bearer(r)
	if err == nil {
		err = s.unlink(r.Context(), playerID, r.PathValue("provider"))
	}
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
