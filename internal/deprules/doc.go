// Package deprules holds only a test: it enforces livecell's import rules so
// the architecture stays what the docs say it is.
//
//   - A service under cell/<svc> never imports another service's
//     implementation; it may import only cell/<other>api wire packages.
//   - Components (gateway, router, edge, global, loadtest, chaos) never import
//     a service implementation either.
//   - internal/ is shared plumbing: it never imports a component.
//
// The composition roots, cmd/... and the cell package itself, may import
// everything: that is where services are wired together.
package deprules
