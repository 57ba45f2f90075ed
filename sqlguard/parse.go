package sqlguard

import (
	"container/list"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	pgquery "github.com/wasilibs/go-pgquery"
)

// MaxText is the longest query string the parser is given. A longer one
// is not analysed: it is unknown, and its rule's on_unknown decides.
const MaxText = 1 << 20

// maxCachedText is the longest query string the cache keeps: the cache's
// memory is bounded by its entry count times this, whatever sizes clients
// send. Longer strings are parsed each time they come.
const maxCachedText = 16 << 10

// ErrTooLong: the query string is over MaxText.
var ErrTooLong = errors.New("sqlguard: statement too long to analyse")

// ParseError is the parser's refusal of a query string.
type ParseError struct{ Msg string }

func (e *ParseError) Error() string { return "sqlguard: " + e.Msg }

// Parser parses and classifies query strings, caching the result by
// text. The zero value is not usable: use NewParser. It is safe for
// concurrent use.
type Parser struct {
	// sem bounds concurrent parses: each concurrent parse the library
	// runs needs its own WebAssembly instance (compiled once per
	// instance, about a second), so at most GOMAXPROCS exist.
	sem chan struct{}

	misses atomic.Int64 // texts parsed (not answered from the cache)

	mu    sync.Mutex
	max   int
	lru   *list.List // of *entry, most recent first
	items map[string]*list.Element
}

type entry struct {
	text  string
	stmts []Statement
	err   error
	// lead and trail are what a shape entry's statement leaves out of
	// the text at each end (shareable).
	lead, trail int
}

// NewParser returns a parser that keeps the results of up to cacheSize
// distinct query strings (0: 4096).
func NewParser(cacheSize int) *Parser {
	if cacheSize <= 0 {
		cacheSize = 4096
	}
	return &Parser{
		sem:   make(chan struct{}, max(1, runtime.GOMAXPROCS(0))),
		max:   cacheSize,
		lru:   list.New(),
		items: make(map[string]*list.Element),
	}
}

// Warm makes the parser's first WebAssembly instance, so that the first
// statement a session sends does not wait for it.
func (p *Parser) Warm() { p.parse("SELECT 1") }

// Parse classifies every statement of text, from the cache when text was
// parsed before — or when a text of the same shape was (shape.go: the
// same but for its plain literals), for a single statement. The returned
// slice is shared: do not modify it. An error is a *ParseError (the
// grammar rejects text) or ErrTooLong.
func (p *Parser) Parse(text string) ([]Statement, error) {
	p.mu.Lock()
	if el, ok := p.items[text]; ok {
		p.lru.MoveToFront(el)
		e := el.Value.(*entry)
		p.mu.Unlock()
		return e.stmts, e.err
	}
	p.mu.Unlock()
	if len(text) > maxCachedText {
		return p.parse(text) // not cached: the key would be the long text
	}
	key, spans, shaped := shapeSpans(text)
	shaped = shaped && len(spans) > 0 // else the exact text is the key already
	if shaped && plainLiterals(text, spans) {
		p.mu.Lock()
		if el, ok := p.items[key]; ok {
			p.lru.MoveToFront(el)
			e := el.Value.(*entry)
			p.mu.Unlock()
			st := e.stmts[0]
			st.Text = text[e.lead : len(text)-e.trail]
			return []Statement{st}, nil
		}
		p.mu.Unlock()
	}
	stmts, err := p.parse(text)
	lead, trail, share := shareable(text, stmts, err)
	share = share && shaped && p.scannedAs(text, spans)
	p.mu.Lock()
	p.put(text, stmts, err, 0, 0)
	if share {
		p.put(key, stmts, err, lead, trail)
	}
	p.mu.Unlock()
	return stmts, err
}

// scannedAs runs PostgreSQL's scanner over text and reports whether it
// cuts the literals as spans does (cutAsScanned); a failure is a no.
func (p *Parser) scannedAs(text string, spans []span) (ok bool) {
	p.sem <- struct{}{}
	defer func() { <-p.sem }()
	defer func() {
		if r := recover(); r != nil {
			ok = false
		}
	}()
	res, err := pgquery.Scan(text)
	return err == nil && cutAsScanned(res.GetTokens(), spans)
}

// put caches stmts and err under key (p.mu held), evicting the least
// recently used entries over p.max.
func (p *Parser) put(key string, stmts []Statement, err error, lead, trail int) {
	if _, ok := p.items[key]; ok {
		return
	}
	p.items[key] = p.lru.PushFront(&entry{text: key, stmts: stmts, err: err, lead: lead, trail: trail})
	for p.lru.Len() > p.max {
		old := p.lru.Remove(p.lru.Back()).(*entry)
		delete(p.items, old.text)
	}
}

func (p *Parser) parse(text string) (stmts []Statement, err error) {
	p.misses.Add(1)
	if len(text) > MaxText {
		return nil, ErrTooLong
	}
	p.sem <- struct{}{}
	defer func() { <-p.sem }()
	defer func() {
		// The parser runs C code compiled to WebAssembly; a trap in it is
		// a refusal of this text, not the end of the server.
		if r := recover(); r != nil {
			stmts, err = nil, &ParseError{Msg: fmt.Sprint("parser failed: ", r)}
		}
	}()
	tree, err := pgquery.Parse(text)
	if err != nil {
		return nil, &ParseError{Msg: err.Error()}
	}
	for _, raw := range tree.Stmts {
		stmts = append(stmts, classify(raw.Stmt, stmtText(text, raw.StmtLocation, raw.StmtLen)))
	}
	if len(stmts) == 0 {
		// An empty query string (or only comments and semicolons).
		stmts = []Statement{{Text: text, Kind: "empty", Class: ClassUtility}}
	}
	return stmts, nil
}

// stmtText cuts one statement out of the query string (libpg_query's
// byte offsets; a length of 0 means "to the end").
func stmtText(text string, loc, n int32) string {
	start := int(loc)
	if start < 0 || start > len(text) {
		return text
	}
	end := len(text)
	if n > 0 && start+int(n) <= len(text) {
		end = start + int(n)
	}
	return text[start:end]
}
