package openapitest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
)

// Registration is one pattern a package registers on an http.ServeMux.
type Registration struct {
	Pattern string // as registered, e.g. "POST /v1/auth/login"
	Pos     string // file:line of the registering call
}

// Registrations returns every pattern that the non-test Go files of the
// package in dir register with Handle or HandleFunc, evaluated from the
// source. A pattern is evaluated from string literals, +, constants of the
// package and of other packages of the module, net/http's method names,
// and loop variables ranging over literal lists; a pattern built any other
// way is an error, never skipped, so that a route cannot escape the check.
func Registrations(dir string) ([]Registration, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	sources := map[string][]byte{}
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			if sources[n], err = os.ReadFile(filepath.Join(dir, n)); err != nil {
				return nil, err
			}
		}
	}
	return RegistrationsFromSource(dir, sources)
}

// RegistrationsFromSource is Registrations over the given files (name →
// content) of the package in dir; dir locates the module for imports.
// Tests use it to feed modified sources.
func RegistrationsFromSource(dir string, sources map[string][]byte) ([]Registration, error) {
	root, modPath, err := findModule(dir)
	if err != nil {
		return nil, err
	}
	ev := &evaluator{fset: token.NewFileSet(), root: root, modPath: modPath, pkgs: map[string]*pkgScope{}}
	pkg, err := ev.parsePackage(dir, sources)
	if err != nil {
		return nil, err
	}
	var regs []Registration
	var errs []error
	for _, f := range pkg.files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
				return true
			}
			pos := ev.pos(call)
			if !ev.isMux(f, sel) && sel.Sel.Name == "Handle" {
				// Handle on something not known to be a mux (a struct
				// field, a slog.Handler): a registration exactly when its
				// first argument is a string we can read.
				if len(call.Args) == 2 {
					if pats, err := ev.eval(pkg, f, call.Args[0], 0); err == nil {
						for _, p := range pats {
							regs = append(regs, Registration{Pattern: p, Pos: pos})
						}
					}
				}
				return true
			}
			if len(call.Args) != 2 {
				errs = append(errs, fmt.Errorf("%s: %s call with %d arguments, want 2", pos, sel.Sel.Name, len(call.Args)))
				return true
			}
			pats, err := ev.eval(pkg, f, call.Args[0], 0)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: cannot evaluate the pattern %s: %w (teach openapitest, or build the pattern from constants)", pos, ev.src(call.Args[0]), err))
				return true
			}
			for _, p := range pats {
				regs = append(regs, Registration{Pattern: p, Pos: pos})
			}
			return true
		})
	}
	if err := errors.Join(errs...); err != nil {
		return regs, err
	}
	if len(regs) == 0 {
		return nil, fmt.Errorf("%s: found no Handle or HandleFunc registrations", dir)
	}
	return regs, nil
}

func findModule(dir string) (root, modPath string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
					return d, strings.Trim(strings.TrimSpace(rest), `"`), nil
				}
			}
			return "", "", fmt.Errorf("%s/go.mod has no module line", d)
		}
		if filepath.Dir(d) == d {
			return "", "", fmt.Errorf("no go.mod above %s", abs)
		}
	}
}

type evaluator struct {
	fset    *token.FileSet
	root    string // module root directory
	modPath string
	pkgs    map[string]*pkgScope // by import path
}

type pkgScope struct {
	files []*ast.File
	decls map[string]decl // package-level constants and variables
	// Variables assigned after their definition (=, op=, ++, &v, a
	// redeclaring :=), which the reader cannot follow: by object where
	// the parser resolved it, else by name.
	assignedObj  map[*ast.Object]bool
	assignedName map[string]bool
}

type decl struct {
	spec  *ast.ValueSpec
	idx   int
	file  *ast.File
	isVar bool
}

// noteAssignments records the variables f assigns after defining them.
func (pkg *pkgScope) noteAssignments(f *ast.File) {
	mark := func(e ast.Expr) {
		for {
			switch x := e.(type) {
			case *ast.IndexExpr:
				e = x.X
				continue
			case *ast.SelectorExpr:
				e = x.X
				continue
			case *ast.StarExpr:
				e = x.X
				continue
			case *ast.ParenExpr:
				e = x.X
				continue
			case *ast.Ident:
				if x.Obj != nil {
					pkg.assignedObj[x.Obj] = true
				} else {
					pkg.assignedName[x.Name] = true
				}
			}
			return
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			for _, l := range n.Lhs {
				if id, ok := l.(*ast.Ident); ok && n.Tok == token.DEFINE && (id.Obj == nil || id.Obj.Decl == n) {
					continue // a definition, not an assignment
				}
				mark(l)
			}
		case *ast.RangeStmt:
			if n.Tok == token.ASSIGN {
				mark(n.Key)
				if n.Value != nil {
					mark(n.Value)
				}
			}
		case *ast.IncDecStmt:
			mark(n.X)
		case *ast.UnaryExpr:
			if n.Op == token.AND {
				mark(n.X)
			}
		}
		return true
	})
}

func (pkg *pkgScope) assigned(id *ast.Ident) bool {
	return (id.Obj != nil && pkg.assignedObj[id.Obj]) || pkg.assignedName[id.Name]
}

func (ev *evaluator) parsePackage(dir string, sources map[string][]byte) (*pkgScope, error) {
	pkg := &pkgScope{decls: map[string]decl{}, assignedObj: map[*ast.Object]bool{}, assignedName: map[string]bool{}}
	for _, name := range sortedKeys(sources) {
		f, err := parser.ParseFile(ev.fset, filepath.Join(dir, name), sources[name], 0)
		if err != nil {
			return nil, err
		}
		pkg.files = append(pkg.files, f)
		pkg.noteAssignments(f)
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || (gd.Tok != token.CONST && gd.Tok != token.VAR) {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					pkg.decls[n.Name] = decl{spec: vs, idx: i, file: f, isVar: gd.Tok == token.VAR}
				}
			}
		}
	}
	return pkg, nil
}

// importedPackage parses the module package with import path p.
func (ev *evaluator) importedPackage(p string) (*pkgScope, error) {
	if pkg, ok := ev.pkgs[p]; ok {
		return pkg, nil
	}
	rel, ok := strings.CutPrefix(p, ev.modPath+"/")
	if !ok {
		return nil, fmt.Errorf("package %s is outside module %s", p, ev.modPath)
	}
	dir := filepath.Join(ev.root, filepath.FromSlash(rel))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	sources := map[string][]byte{}
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			if sources[n], err = os.ReadFile(filepath.Join(dir, n)); err != nil {
				return nil, err
			}
		}
	}
	pkg, err := ev.parsePackage(dir, sources)
	if err != nil {
		return nil, err
	}
	ev.pkgs[p] = pkg
	return pkg, nil
}

func (ev *evaluator) pos(n ast.Node) string {
	p := ev.fset.Position(n.Pos())
	return filepath.Base(p.Filename) + ":" + strconv.Itoa(p.Line)
}

func (ev *evaluator) src(n ast.Node) string {
	var b strings.Builder
	printer.Fprint(&b, ev.fset, n)
	return b.String()
}

func importPath(f *ast.File, name string) (string, bool) {
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		local := p[strings.LastIndex(p, "/")+1:]
		if imp.Name != nil {
			local = imp.Name.Name
		}
		if local == name {
			return p, true
		}
	}
	return "", false
}

// isMux reports whether the receiver of sel is known to be an
// *http.ServeMux: package http itself (DefaultServeMux), a variable made by
// http.NewServeMux, or one declared *http.ServeMux.
func (ev *evaluator) isMux(f *ast.File, sel *ast.SelectorExpr) bool {
	id, ok := sel.X.(*ast.Ident)
	if !ok {
		return false
	}
	if p, ok := importPath(f, id.Name); ok && id.Obj == nil {
		return p == "net/http"
	}
	if id.Obj == nil {
		return false
	}
	isMuxType := func(e ast.Expr) bool {
		if st, ok := e.(*ast.StarExpr); ok {
			e = st.X
		}
		s, ok := e.(*ast.SelectorExpr)
		return ok && s.Sel.Name == "ServeMux"
	}
	switch d := id.Obj.Decl.(type) {
	case *ast.Field:
		return isMuxType(d.Type)
	case *ast.ValueSpec:
		if d.Type != nil && isMuxType(d.Type) {
			return true
		}
		for _, v := range d.Values {
			if isNewServeMux(v) {
				return true
			}
		}
	case *ast.AssignStmt:
		for _, v := range d.Rhs {
			if isNewServeMux(v) {
				return true
			}
		}
	}
	return false
}

func isNewServeMux(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.CallExpr:
		s, ok := e.Fun.(*ast.SelectorExpr)
		return ok && s.Sel.Name == "NewServeMux"
	case *ast.UnaryExpr:
		if cl, ok := e.X.(*ast.CompositeLit); ok {
			s, ok := cl.Type.(*ast.SelectorExpr)
			return ok && s.Sel.Name == "ServeMux"
		}
	}
	return false
}

// httpConstants are the net/http string constants a pattern may use.
var httpConstants = map[string]string{
	"MethodGet": http.MethodGet, "MethodHead": http.MethodHead, "MethodPost": http.MethodPost,
	"MethodPut": http.MethodPut, "MethodPatch": http.MethodPatch, "MethodDelete": http.MethodDelete,
	"MethodConnect": http.MethodConnect, "MethodOptions": http.MethodOptions, "MethodTrace": http.MethodTrace,
}

// eval returns the values e can take: one, or one per element when e is
// (or contains) a loop variable over a literal list.
func (ev *evaluator) eval(pkg *pkgScope, f *ast.File, e ast.Expr, depth int) ([]string, error) {
	if depth > 32 {
		return nil, errors.New("too deep")
	}
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return nil, fmt.Errorf("%s is not a string", e.Value)
		}
		s, err := strconv.Unquote(e.Value)
		return []string{s}, err
	case *ast.ParenExpr:
		return ev.eval(pkg, f, e.X, depth+1)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return nil, fmt.Errorf("operator %s", e.Op)
		}
		xs, err := ev.eval(pkg, f, e.X, depth+1)
		if err != nil {
			return nil, err
		}
		ys, err := ev.eval(pkg, f, e.Y, depth+1)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, x := range xs {
			for _, y := range ys {
				out = append(out, x+y)
			}
		}
		return out, nil
	case *ast.Ident:
		if e.Obj != nil && e.Obj.Kind == ast.Var && pkg.assigned(e) {
			return nil, fmt.Errorf("%s is assigned after its definition", e.Name)
		}
		if e.Obj != nil {
			switch d := e.Obj.Decl.(type) {
			case *ast.ValueSpec:
				return ev.evalSpec(pkg, f, d, slices.IndexFunc(d.Names, func(n *ast.Ident) bool { return n.Name == e.Name }), depth)
			case *ast.AssignStmt:
				i := slices.IndexFunc(d.Lhs, func(l ast.Expr) bool { id, ok := l.(*ast.Ident); return ok && id.Name == e.Name })
				if len(d.Rhs) == 1 {
					if u, ok := d.Rhs[0].(*ast.UnaryExpr); ok && u.Op == token.RANGE {
						if i != 1 {
							return nil, fmt.Errorf("%s is the key of a range loop, not its value", e.Name)
						}
						return ev.evalList(pkg, f, u.X, depth+1)
					}
				}
				if i < 0 || len(d.Rhs) != len(d.Lhs) || d.Tok != token.DEFINE {
					return nil, fmt.Errorf("cannot follow the assignment of %s", e.Name)
				}
				return ev.eval(pkg, f, d.Rhs[i], depth+1)
			}
			return nil, fmt.Errorf("%s is not a constant, variable or loop variable", e.Name)
		}
		if d, ok := pkg.decls[e.Name]; ok {
			if d.isVar && (pkg.assignedName[e.Name] || pkg.assignedObj[d.spec.Names[d.idx].Obj]) {
				return nil, fmt.Errorf("%s is assigned after its definition", e.Name)
			}
			return ev.evalSpec(pkg, d.file, d.spec, d.idx, depth)
		}
		return nil, fmt.Errorf("unknown identifier %s", e.Name)
	case *ast.SelectorExpr:
		id, ok := e.X.(*ast.Ident)
		if !ok || id.Obj != nil {
			return nil, fmt.Errorf("%s is not a package-qualified name", ev.src(e))
		}
		p, ok := importPath(f, id.Name)
		if !ok {
			return nil, fmt.Errorf("%s is not an imported package", id.Name)
		}
		if p == "net/http" {
			if v, ok := httpConstants[e.Sel.Name]; ok {
				return []string{v}, nil
			}
			return nil, fmt.Errorf("net/http.%s is not a known constant", e.Sel.Name)
		}
		other, err := ev.importedPackage(p)
		if err != nil {
			return nil, err
		}
		d, ok := other.decls[e.Sel.Name]
		if !ok {
			return nil, fmt.Errorf("%s has no package-level %s", p, e.Sel.Name)
		}
		if d.isVar {
			return nil, fmt.Errorf("%s.%s is a variable; only constants of other packages are read", id.Name, e.Sel.Name)
		}
		return ev.evalSpec(other, d.file, d.spec, d.idx, depth)
	}
	return nil, fmt.Errorf("unsupported expression %T", e)
}

func (ev *evaluator) evalSpec(pkg *pkgScope, f *ast.File, vs *ast.ValueSpec, i, depth int) ([]string, error) {
	if i < 0 || i >= len(vs.Values) || len(vs.Values) != len(vs.Names) {
		return nil, fmt.Errorf("%s has no value of its own", vs.Names[0].Name)
	}
	return ev.eval(pkg, f, vs.Values[i], depth+1)
}

// evalList evaluates a literal list of strings, possibly through a name.
func (ev *evaluator) evalList(pkg *pkgScope, f *ast.File, e ast.Expr, depth int) ([]string, error) {
	switch e := e.(type) {
	case *ast.CompositeLit:
		var out []string
		for _, elt := range e.Elts {
			vs, err := ev.eval(pkg, f, elt, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, vs...)
		}
		return out, nil
	case *ast.Ident:
		if pkg.assigned(e) {
			return nil, fmt.Errorf("%s is assigned after its definition", e.Name)
		}
		var vs *ast.ValueSpec
		var idx int
		if e.Obj != nil {
			if d, ok := e.Obj.Decl.(*ast.ValueSpec); ok {
				vs, idx = d, slices.IndexFunc(d.Names, func(n *ast.Ident) bool { return n.Name == e.Name })
			} else if d, ok := e.Obj.Decl.(*ast.AssignStmt); ok && len(d.Lhs) == 1 && len(d.Rhs) == 1 && d.Tok == token.DEFINE {
				return ev.evalList(pkg, f, d.Rhs[0], depth+1)
			}
		} else if d, ok := pkg.decls[e.Name]; ok {
			if pkg.assignedObj[d.spec.Names[d.idx].Obj] {
				return nil, fmt.Errorf("%s is assigned after its definition", e.Name)
			}
			vs, idx, f = d.spec, d.idx, d.file
		}
		if vs == nil || idx < 0 || idx >= len(vs.Values) {
			return nil, fmt.Errorf("cannot find the list %s", e.Name)
		}
		return ev.evalList(pkg, f, vs.Values[idx], depth+1)
	}
	return nil, fmt.Errorf("range over %T, want a literal list", e)
}

// Route is an operation a handler serves.
type Route struct {
	Method string // "" when the pattern has none: every method
	Path   string // ServeMux pattern path, e.g. /v1/accounts/me/identities/{provider}
	Pos    string // where it is registered
}

func (r Route) String() string {
	if r.Method == "" {
		return "(any method) " + r.Path
	}
	return r.Method + " " + r.Path
}

// splitPattern splits a ServeMux pattern "[METHOD ][HOST]/PATH".
func splitPattern(p string) (method, path string) {
	if m, rest, ok := strings.Cut(p, " "); ok {
		method, p = m, strings.TrimLeft(rest, " \t")
	}
	if i := strings.Index(p, "/"); i > 0 {
		p = p[i:] // drop a host
	}
	return method, p
}

// probeMethod is a method no route uses, for reaching method-less
// patterns.
const probeMethod = "LIVECELLPROBE"

// samplePath fills a ServeMux or OpenAPI path template with values.
func samplePath(path string, value func(name string) string) string {
	path = strings.ReplaceAll(path, "{$}", "")
	path = templateRE.ReplaceAllStringFunc(path, func(m string) string {
		name := m[1 : len(m)-1]
		if n, ok := strings.CutSuffix(name, "..."); ok {
			return value(n) + "/" + value(n)
		}
		return value(name)
	})
	if strings.HasSuffix(path, "/") && path != "/" {
		path += "x"
	}
	return path
}

// IsCatchAll reports whether an answer is one of the catch-alls every
// livecell mux ends with: the "no such endpoint" 404 or a 405.
func IsCatchAll(status int, body []byte) bool {
	if status == http.StatusMethodNotAllowed {
		return true
	}
	if status != http.StatusNotFound {
		return false
	}
	var eb httpapi.ErrorBody
	return json.Unmarshal(body, &eb) == nil && eb.Code == apierr.NotFound && strings.HasPrefix(eb.Message, "no such endpoint")
}

// Routes checks regs against the live handler h, an *http.ServeMux: a
// request built from each registered pattern must be routed by h to that
// very pattern, proving the source evaluation right. It returns the routes:
// every pattern with a method, and every pattern without one whose handler
// is not a catch-all (a 405 or the "no such endpoint" 404).
func Routes(h http.Handler, regs []Registration) ([]Route, []string) {
	mux, ok := h.(*http.ServeMux)
	if !ok {
		return nil, []string{fmt.Sprintf("the handler is a %T, not an *http.ServeMux: cannot check its patterns", h)}
	}
	var routes []Route
	var probs []string
	for _, reg := range regs {
		method, path := splitPattern(reg.Pattern)
		reqMethod := method
		if reqMethod == "" {
			reqMethod = probeMethod
		}
		req := httptest.NewRequest(reqMethod, samplePath(path, func(string) string { return "sample" }), nil)
		if _, got := mux.Handler(req); got != reg.Pattern {
			probs = append(probs, fmt.Sprintf("%s registers %q, but the live handler routes %s %s to %q: the source was misread or the registration is shadowed",
				reg.Pos, reg.Pattern, req.Method, req.URL.Path, got))
			continue
		}
		if method != "" {
			routes = append(routes, Route{Method: method, Path: path, Pos: reg.Pos})
			continue
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !IsCatchAll(rec.Code, rec.Body.Bytes()) {
			routes = append(routes, Route{Path: path, Pos: reg.Pos})
		}
	}
	return routes, probs
}

// normPath replaces template parameter names with {} for comparison.
func normPath(p string) string {
	return templateRE.ReplaceAllString(strings.ReplaceAll(p, "{$}", ""), "{}")
}

// CompareRoutes checks that the document's operations are exactly routes:
// every route is documented (a method-less route by its path) and every
// documented operation is a route (HEAD is served by GET). Parameter names
// must match too.
func (d *Doc) CompareRoutes(routes []Route) []string {
	var probs []string
	ops := d.Operations()
	for _, r := range routes {
		found := false
		for _, op := range ops {
			if normPath(op.Path) != normPath(r.Path) || (r.Method != "" && op.Method != r.Method) {
				continue
			}
			found = true
			routeParams := TemplateParams(strings.ReplaceAll(strings.ReplaceAll(r.Path, "{$}", ""), "...", ""))
			if !slices.Equal(TemplateParams(op.Path), routeParams) {
				probs = append(probs, fmt.Sprintf("%s: %s names its parameters %v, but %s (%s) names them %v",
					d.Name, op.Key(), TemplateParams(op.Path), r, r.Pos, routeParams))
			}
		}
		if !found {
			probs = append(probs, fmt.Sprintf("%s: route %s (%s) is not documented", d.Name, r, r.Pos))
		}
	}
	for _, op := range ops {
		if !slices.ContainsFunc(routes, func(r Route) bool {
			return normPath(r.Path) == normPath(op.Path) &&
				(r.Method == "" || r.Method == op.Method || (op.Method == http.MethodHead && r.Method == http.MethodGet))
		}) {
			probs = append(probs, fmt.Sprintf("%s: documented %s is not a route of the handler", d.Name, op.Key()))
		}
	}
	return probs
}

// SamplePath fills op's path with a sample value per path parameter: its
// example, else the first value of its enum, else "sample".
func (d *Doc) SamplePath(op Operation) string {
	params, _ := d.Parameters(op)
	return samplePath(op.Path, func(name string) string {
		for _, p := range params {
			if p["in"] != "path" || p["name"] != name {
				continue
			}
			if ex, ok := p["example"]; ok {
				return fmt.Sprint(ex)
			}
			s, _ := d.Deref(p["schema"])
			if ex, ok := s["example"]; ok {
				return fmt.Sprint(ex)
			}
			if enum, ok := s["enum"].([]any); ok && len(enum) > 0 {
				return fmt.Sprint(enum[0])
			}
		}
		return "sample"
	})
}

// Probe is one documented operation sent to a handler.
type Probe struct {
	Op     Operation
	Status int
	Header http.Header
	Body   []byte
}

// ProbeOperations sends every documented operation to h, with sample path
// parameters and no body or credentials, and reports those that h answers
// with a catch-all (the "no such endpoint" 404, or a 405): documented but
// not served.
func (d *Doc) ProbeOperations(h http.Handler) ([]Probe, []string) {
	var out []Probe
	var probs []string
	for _, op := range d.Operations() {
		req := httptest.NewRequest(op.Method, d.SamplePath(op), nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if IsCatchAll(rec.Code, rec.Body.Bytes()) {
			probs = append(probs, fmt.Sprintf("%s: documented %s (sent as %s %s) got the catch-all %d %s",
				d.Name, op.Key(), req.Method, req.URL.Path, rec.Code, bytes.TrimSpace(rec.Body.Bytes())))
		}
		out = append(out, Probe{Op: op, Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()})
	}
	return out, probs
}

// CheckMethods sends each documented path a method it does not document
// and checks the answer: 405 method_not_allowed with an Allow header
// listing exactly the documented methods (and HEAD with GET). So a method
// that the handler serves but the document omits is found without reading
// the source.
func (d *Doc) CheckMethods(h http.Handler) []string {
	var probs []string
	byPath := map[string][]string{}
	first := map[string]Operation{}
	for _, op := range d.Operations() {
		if _, ok := first[op.Path]; !ok {
			first[op.Path] = op
		}
		byPath[op.Path] = append(byPath[op.Path], op.Method)
		if op.Method == http.MethodGet {
			byPath[op.Path] = append(byPath[op.Path], http.MethodHead)
		}
	}
	for _, path := range sortedKeys(byPath) {
		want := byPath[path]
		slices.Sort(want)
		want = slices.Compact(want)
		var other string
		for _, m := range []string{http.MethodPatch, http.MethodPut, http.MethodDelete, http.MethodPost, http.MethodGet, http.MethodOptions} {
			if !slices.Contains(want, m) {
				other = m
				break
			}
		}
		if other == "" {
			continue // every method is documented: nothing to refuse
		}
		req := httptest.NewRequest(other, d.SamplePath(first[path]), nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var eb httpapi.ErrorBody
		_ = json.Unmarshal(rec.Body.Bytes(), &eb)
		if rec.Code != http.StatusMethodNotAllowed || eb.Code != apierr.MethodNotAllowed {
			probs = append(probs, fmt.Sprintf("%s: %s %s (a method not documented for %s) got %d %q, want 405 %s",
				d.Name, other, req.URL.Path, path, rec.Code, eb.Code, apierr.MethodNotAllowed))
			continue
		}
		var got []string
		for m := range strings.SplitSeq(rec.Header().Get("Allow"), ",") {
			if m = strings.TrimSpace(m); m != "" {
				got = append(got, m)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			probs = append(probs, fmt.Sprintf("%s: %s answers Allow %v, but the document has %v", d.Name, path, got, want))
		}
	}
	return probs
}
