package accounts

import (
	"errors"
	"strings"
	"testing"
)

// cheapParams keeps tests fast; the format and the checks do not depend on cost.
func cheapParams() Argon2Params {
	return Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}
}

func TestHashAndVerify(t *testing.T) {
	for _, pw := range []string{"password1", "pässwörd 🎮 long passphrase", strings.Repeat("x", 128), `x'); DROP TABLE players;--`} {
		h, err := hashPassword(cheapParams(), pw)
		if err != nil {
			t.Fatalf("hashPassword(%q) = %v", pw, err)
		}
		if want := "$argon2id$v=19$m=64,t=1,p=1$"; !strings.HasPrefix(h, want) {
			t.Errorf("hash = %q, want prefix %q", h, want)
		}
		if strings.Contains(h, pw) {
			t.Errorf("hash %q contains the password", h)
		}
		if ok, err := verifyPassword(h, pw); !ok || err != nil {
			t.Errorf("verifyPassword(hash, %q) = %v, %v; want true, nil", pw, ok, err)
		}
		if ok, err := verifyPassword(h, pw+"x"); ok || err != nil {
			t.Errorf("verifyPassword(hash, wrong) = %v, %v; want false, nil", ok, err)
		}
	}
}

func TestHashesAreSalted(t *testing.T) {
	a, _ := hashPassword(cheapParams(), "password1")
	b, _ := hashPassword(cheapParams(), "password1")
	if a == b {
		t.Fatalf("two hashes of one password are equal (%q), want distinct salts", a)
	}
}

// Hashes record their parameters, so raising the cost later keeps old
// hashes verifying.
func TestVerifyUsesStoredParams(t *testing.T) {
	old := Argon2Params{Time: 2, MemoryKiB: 128, Threads: 2, KeyLen: 16, SaltLen: 8}
	h, err := hashPassword(old, "password1")
	if err != nil {
		t.Fatal(err)
	}
	p, salt, key, err := parseHash(h)
	if err != nil {
		t.Fatalf("parseHash(%q) = %v", h, err)
	}
	if p != old || len(salt) != 8 || len(key) != 16 {
		t.Errorf("parseHash = %+v salt %d key %d, want %+v salt 8 key 16", p, len(salt), len(key), old)
	}
	if ok, err := verifyPassword(h, "password1"); !ok || err != nil {
		t.Errorf("verifyPassword with other params = %v, %v; want true, nil", ok, err)
	}
}

// A hash written by the reference C implementation (through argon2-cffi,
// the example of its README) verifies: the format is the standard one.
func TestVerifyReferenceHash(t *testing.T) {
	t.Parallel() // 64 MiB and t=3: seconds under -race, so overlap the rest
	if testing.Short() {
		t.Skip("64 MiB argon2 in -short mode")
	}
	const h = "$argon2id$v=19$m=65536,t=3,p=4$MIIRqgvgQbgj220jfp0MPA$YfwJSVjtjSU0zzV/P3S9nnQ/USre2wvJMjfCIjrTQbg"
	if ok, err := verifyPassword(h, "correct horse battery staple"); !ok || err != nil {
		t.Errorf("verifyPassword(reference hash, right password) = %v, %v; want true, nil", ok, err)
	}
	if ok, err := verifyPassword(h, "Tr0ub4dor&3"); ok || err != nil {
		t.Errorf("verifyPassword(reference hash, wrong password) = %v, %v; want false, nil", ok, err)
	}
}

func TestParseHashRejects(t *testing.T) {
	const salt, key = "c2FsdHNhbHRzYWx0", "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
	for _, h := range []string{
		"",
		"plaintext",
		"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$extra",
		"$argon2id$v=19$m=64,t=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1x$" + salt + "$" + key,
		"$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=256$" + salt + "$" + key,
		"$argon2id$v=19$m=4,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key, // 4 TiB: refused, not allocated
		"$argon2id$v=19$m=64,t=99999,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$!!!$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "==",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + key,       // 4-byte salt
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$aGFzaA", // 4-byte key
	} {
		ok, err := verifyPassword(h, "password1")
		if ok || !errors.Is(err, errBadHash) {
			t.Errorf("verifyPassword(%q) = %v, %v; want false, errBadHash", h, ok, err)
		}
	}
}

func TestArgon2ParamsValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Argon2Params
		ok   bool
	}{
		{"default", DefaultArgon2(), true},
		{"cheap", cheapParams(), true},
		{"zero time", Argon2Params{Time: 0, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}, false},
		{"zero threads", Argon2Params{Time: 1, MemoryKiB: 64, Threads: 0, KeyLen: 32, SaltLen: 16}, false},
		{"memory below 8 KiB per lane", Argon2Params{Time: 1, MemoryKiB: 15, Threads: 2, KeyLen: 32, SaltLen: 16}, false},
		{"memory above 1 GiB", Argon2Params{Time: 1, MemoryKiB: 1<<20 + 1, Threads: 1, KeyLen: 32, SaltLen: 16}, false},
		{"short key", Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 8, SaltLen: 16}, false},
		{"short salt", Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 4}, false},
	}
	for _, tt := range tests {
		if err := tt.p.validate(); (err == nil) != tt.ok {
			t.Errorf("%s: validate() = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	if d := DefaultArgon2(); d.MemoryKiB != 19456 || d.Time != 2 || d.Threads != 1 || d.KeyLen != 32 || d.SaltLen != 16 {
		t.Errorf("DefaultArgon2() = %+v, want OWASP m=19456 t=2 p=1 key 32 salt 16", d)
	}
}

func FuzzParseHash(f *testing.F) {
	h, _ := hashPassword(cheapParams(), "password1")
	f.Add(h)
	f.Add("$argon2id$v=19$m=64,t=1,p=1$$")
	f.Add("$argon2id$v=19$m=99999999999,t=1,p=1$c2FsdHNhbHQ$aGFzaA")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := parseHash(s)
		if err != nil {
			return
		}
		// Anything accepted is within the bounds verification can afford.
		if vErr := p.validate(); vErr != nil {
			t.Fatalf("parseHash(%q) accepted params %+v that validate rejects: %v", s, p, vErr)
		}
		if uint32(len(salt)) != p.SaltLen || uint32(len(key)) != p.KeyLen {
			t.Fatalf("parseHash(%q): lengths %d/%d disagree with %+v", s, len(salt), len(key), p)
		}
	})
}
