// pikosdk: an independent client of Pico, written in Go from Debian's packages
// (golang-go, golang-github-hashicorp-yamux-dev, golang-github-gorilla-websocket-dev), that
// follows the protocol of Piko's Go SDK as read from its source: an upstream opens a WebSocket on
// the upstream port's /piko/v1/upstream/<endpoint> (or Pico's /pico/v1/upstream/<endpoint>), runs
// a yamux client session over binary messages and serves each stream the node opens (one HTTP
// request, or one TCP connection); a TCP client opens a WebSocket on the proxy port's
// /_piko/v1/tcp/<endpoint> (or /_pico/v1/tcp/<endpoint>) and sends binary messages.
//
// Commands (each prints one JSON line of results to stdout, exits 0 when every check passed):
//
//	serve-http <upstream-url> <path> <endpoint>    an HTTP upstream until killed
//	serve-tcp <upstream-url> <path> <endpoint>     a TCP echo upstream until killed
//	dial-tcp <proxy-url> <path> <endpoint> <bytes> one TCP connection through the route
//	stress <upstream-url> <proxy-url> <endpoint> <streams> <large-streams> <large-bytes>
//	                                               hashicorp's yamux against Pico's, see stress()
//
// Build: GO111MODULE=off GOPATH=/usr/share/gocode go build -o pikosdk main.go
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/yamux"
)

// wsConn is a net.Conn over binary WebSocket messages, as Piko's pkg/websocket.Conn.
type wsConn struct {
	ws     *websocket.Conn
	reader io.Reader
	wmu    sync.Mutex
}

func (c *wsConn) Read(b []byte) (int, error) {
	for {
		if c.reader == nil {
			kind, r, err := c.ws.NextReader()
			if err != nil {
				var closeErr *websocket.CloseError
				if errors.As(err, &closeErr) {
					return 0, io.EOF
				}
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				return 0, fmt.Errorf("unexpected message type %d", kind)
			}
			c.reader = r
		}
		n, err := c.reader.Read(b)
		if err == io.EOF {
			c.reader = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (c *wsConn) Close() error                       { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetDeadline(t time.Time) error      { return c.ws.UnderlyingConn().SetDeadline(t) }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

func dial(url string) (*wsConn, error) {
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, resp, err := dialer.Dial(url, nil)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return nil, fmt.Errorf("%d: %s", resp.StatusCode, bytes.TrimSpace(body))
		}
		return nil, err
	}
	return &wsConn{ws: ws}, nil
}

// upstream dials the upstream port and starts a yamux client session, as Piko's SDK does.
func upstream(base, path, endpoint string, keepAlive time.Duration) (*yamux.Session, error) {
	conn, err := dial(base + path + endpoint)
	if err != nil {
		return nil, err
	}
	config := yamux.DefaultConfig()
	config.LogOutput = io.Discard
	if keepAlive > 0 {
		config.KeepAliveInterval = keepAlive
	}
	return yamux.Client(conn, config)
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "pikosdk: "+format+"\n", args...)
	os.Exit(1)
}

func report(results map[string]interface{}, ok bool) {
	line, _ := json.Marshal(results)
	fmt.Println(string(line))
	if !ok {
		os.Exit(1)
	}
}

// handler: GET /hello answers the endpoint's name; POST /sha echoes the body's size and SHA-256;
// GET /bytes?n=N sends N bytes; /slow-reader reads its body only after a pause.
func handler(endpoint string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s via %s", endpoint, r.Header.Get("X-Forwarded-For"))
	})
	mux.HandleFunc("/sha", func(w http.ResponseWriter, r *http.Request) {
		digest := sha256.New()
		n, err := io.Copy(digest, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(digest.Sum(nil)))
	})
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
		for n > 0 {
			piece := chunk
			if n < len(piece) {
				piece = piece[:n]
			}
			if _, err := w.Write(piece); err != nil {
				return
			}
			n -= len(piece)
		}
	})
	mux.HandleFunc("/slow-reader", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Second)
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d", n)
	})
	return mux
}

func echo(stream net.Conn) {
	defer stream.Close()
	io.Copy(stream, stream)
}

func serveHTTP(args []string) {
	if len(args) != 3 {
		fail("serve-http <upstream-url> <path> <endpoint>")
	}
	session, err := upstream(args[0], args[1], args[2], 0)
	if err != nil {
		fail("connect: %v", err)
	}
	fmt.Fprintln(os.Stderr, "pikosdk: serving http")
	http.Serve(session, handler(args[2]))
}

func serveTCP(args []string) {
	if len(args) != 3 {
		fail("serve-tcp <upstream-url> <path> <endpoint>")
	}
	session, err := upstream(args[0], args[1], args[2], 0)
	if err != nil {
		fail("connect: %v", err)
	}
	fmt.Fprintln(os.Stderr, "pikosdk: serving tcp")
	for {
		stream, err := session.Accept()
		if err != nil {
			fail("accept: %v", err)
		}
		go echo(stream)
	}
}

// dialTCP sends <bytes> random bytes through the TCP route, as Piko's Dialer, and reads them back.
func dialTCP(args []string) {
	if len(args) != 4 {
		fail("dial-tcp <proxy-url> <path> <endpoint> <bytes>")
	}
	size, _ := strconv.Atoi(args[3])
	conn, err := dial(args[0] + args[1] + args[2])
	if err != nil {
		report(map[string]interface{}{"error": err.Error()}, false)
	}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i*7 + i/251)
	}
	go func() {
		for sent := 0; sent < size; sent += 32 * 1024 {
			end := sent + 32*1024
			if end > size {
				end = size
			}
			if _, err := conn.Write(payload[sent:end]); err != nil {
				return
			}
		}
	}()
	received := make([]byte, size)
	_, err = io.ReadFull(conn, received)
	conn.Close()
	ok := err == nil && bytes.Equal(received, payload)
	report(map[string]interface{}{"bytes": size, "intact": ok}, ok)
}

// stress serves an HTTP endpoint with hashicorp's yamux (pinging every 100 ms) and sends
// requests through the node's proxy port: <streams> concurrent small exchanges and
// <large-streams> exchanges of <large-bytes> each way (which need many window updates);
// then a request whose handler stops reading its body for 2 s (the node must hold back, not
// fail); then requests the client abandons mid-body (the node resets their streams); then the
// agent says go-away and the node must open no new stream on the session.
func stress(args []string) {
	if len(args) != 6 {
		fail("stress <upstream-url> <proxy-url> <endpoint> <streams> <large-streams> <large-bytes>")
	}
	base, proxy, endpoint := args[0], args[1], args[2]
	streams, _ := strconv.Atoi(args[3])
	large, _ := strconv.Atoi(args[4])
	largeBytes, _ := strconv.Atoi(args[5])
	session, err := upstream(base, "/piko/v1/upstream/", endpoint, 100*time.Millisecond)
	if err != nil {
		fail("connect: %v", err)
	}
	var accepted, resets int64
	var peak int64
	go func() {
		for {
			stream, err := session.AcceptStream()
			if err != nil {
				return
			}
			atomic.AddInt64(&accepted, 1)
			if open := int64(session.NumStreams()); open > atomic.LoadInt64(&peak) {
				atomic.StoreInt64(&peak, open)
			}
			go func() {
				server := &http.Server{Handler: handler(endpoint)}
				server.Serve(&oneConn{conn: &countingConn{Stream: stream, resets: &resets}})
			}()
		}
	}()
	time.Sleep(300 * time.Millisecond)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2000, MaxConnsPerHost: 0, DisableCompression: true}, Timeout: 120 * time.Second}
	results := map[string]interface{}{}
	ok := true
	var failures int64
	var sentUp, sentDown int64
	var samplesMu sync.Mutex
	samples := []string{}
	failed := func(what string) {
		atomic.AddInt64(&failures, 1)
		samplesMu.Lock()
		if len(samples) < 5 {
			samples = append(samples, what)
		}
		samplesMu.Unlock()
	}
	started := time.Now()
	var wg sync.WaitGroup
	exchange := func(size int) {
		defer wg.Done()
		body := make([]byte, size)
		for i := range body {
			body[i] = byte(i ^ size)
		}
		want := sha256.Sum256(body)
		request, _ := http.NewRequest("POST", proxy+"/sha", bytes.NewReader(body))
		request.Header.Set("x-piko-endpoint", endpoint)
		response, err := client.Do(request)
		if err != nil {
			failed("POST: " + err.Error())
			return
		}
		answer, _ := io.ReadAll(response.Body)
		response.Body.Close()
		if string(answer) != fmt.Sprintf("%d %s", size, hex.EncodeToString(want[:])) {
			failed(fmt.Sprintf("POST %d: %d %.200s", size, response.StatusCode, answer))
			return
		}
		atomic.AddInt64(&sentUp, int64(size))
		down, _ := http.NewRequest("GET", fmt.Sprintf("%s/bytes?n=%d", proxy, size), nil)
		down.Header.Set("x-piko-endpoint", endpoint)
		response, err = client.Do(down)
		if err != nil {
			failed("GET: " + err.Error())
			return
		}
		n, err := io.Copy(io.Discard, response.Body)
		response.Body.Close()
		if err != nil || n != int64(size) {
			failed(fmt.Sprintf("GET %d: status %d, %d bytes, %v", size, response.StatusCode, n, err))
			return
		}
		atomic.AddInt64(&sentDown, n)
	}
	small := 0
	if streams > 0 {
		small = (64*1024*1024 - large*largeBytes) / streams
		if small < 1 {
			small = 1
		}
	}
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go exchange(small)
	}
	for i := 0; i < large; i++ {
		wg.Add(1)
		go exchange(largeBytes)
	}
	wg.Wait()
	results["exchanges"] = streams + large
	results["failures"] = failures
	results["failure_samples"] = samples
	results["bytes_up"] = sentUp
	results["bytes_down"] = sentDown
	results["seconds"] = time.Since(started).Seconds()
	results["peak_open_streams"] = atomic.LoadInt64(&peak)
	ok = ok && failures == 0 && sentUp >= 64*1024*1024-int64(streams) && sentDown == sentUp
	results["resets_during_exchanges"] = atomic.LoadInt64(&resets)

	// A handler that stops reading: 4 MiB wait behind the window while it sleeps, then arrive.
	slowBody := bytes.Repeat([]byte("s"), 4*1024*1024)
	request, _ := http.NewRequest("POST", proxy+"/slow-reader", bytes.NewReader(slowBody))
	request.Header.Set("x-piko-endpoint", endpoint)
	response, err := client.Do(request)
	slowOK := false
	if err == nil {
		answer, _ := io.ReadAll(response.Body)
		response.Body.Close()
		slowOK = response.StatusCode == 200 && string(answer) == strconv.Itoa(len(slowBody))
	}
	results["slow_reader_intact"] = slowOK
	results["resets_before_abandoned"] = atomic.LoadInt64(&resets)
	ok = ok && slowOK

	// Clients that give up mid-body: the node resets their streams, and the handler sees it.
	for i := 0; i < 5; i++ {
		conn, err := net.Dial("tcp", proxy[len("http://"):])
		if err != nil {
			continue
		}
		fmt.Fprintf(conn, "POST /sha HTTP/1.1\r\nHost: x\r\nx-piko-endpoint: %s\r\nContent-Length: 1000000\r\n\r\n", endpoint)
		conn.Write(bytes.Repeat([]byte("r"), 100000))
		time.Sleep(100 * time.Millisecond)
		conn.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for atomic.LoadInt64(&resets) < 5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	results["resets_seen"] = atomic.LoadInt64(&resets)
	// At least the abandoned ones (their handler may be mid-read, or past its read, when the
	// reset lands); a stream whose exchange completed is never reset (checked above).
	ok = ok && atomic.LoadInt64(&resets) >= 5 && results["resets_during_exchanges"] == int64(0)

	// Pings went both ways all along: the session is still up.
	if _, err := session.Ping(); err != nil {
		results["ping_error"] = err.Error()
		ok = false
	}

	// Go-away from the agent: the node opens no new stream on this session.
	before := atomic.LoadInt64(&accepted)
	session.GoAway()
	time.Sleep(200 * time.Millisecond)
	goneAway := 0
	for i := 0; i < 5; i++ {
		request, _ := http.NewRequest("GET", proxy+"/hello", nil)
		request.Header.Set("x-piko-endpoint", endpoint)
		response, err := client.Do(request)
		if err == nil {
			io.Copy(io.Discard, response.Body)
			response.Body.Close()
			if response.StatusCode == 502 {
				goneAway++
			}
		}
	}
	results["answered_502_after_go_away"] = goneAway
	results["streams_after_go_away"] = atomic.LoadInt64(&accepted) - before
	ok = ok && goneAway == 5 && atomic.LoadInt64(&accepted) == before
	report(results, ok)
}

// countingConn counts streams the node reset while their handler read them.
type countingConn struct {
	*yamux.Stream
	resets *int64
	once   sync.Once
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Stream.Read(b)
	if err == yamux.ErrConnectionReset {
		c.once.Do(func() { atomic.AddInt64(c.resets, 1) })
	}
	return n, err
}

// oneConn is a net.Listener that yields one connection, then blocks until it closes.
type oneConn struct {
	conn net.Conn
	done chan struct{}
	mu   sync.Mutex
	used bool
}

func (l *oneConn) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.done == nil {
		l.done = make(chan struct{})
	}
	if !l.used {
		l.used = true
		l.mu.Unlock()
		return &closeNotify{Conn: l.conn, done: l.done}, nil
	}
	l.mu.Unlock()
	<-l.done
	return nil, io.EOF
}

func (l *oneConn) Close() error   { return nil }
func (l *oneConn) Addr() net.Addr { return l.conn.LocalAddr() }

type closeNotify struct {
	net.Conn
	done chan struct{}
	once sync.Once
}

func (c *closeNotify) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.Conn.Close()
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: pikosdk serve-http|serve-tcp|dial-tcp|stress ...")
	}
	switch os.Args[1] {
	case "serve-http":
		serveHTTP(os.Args[2:])
	case "serve-tcp":
		serveTCP(os.Args[2:])
	case "dial-tcp":
		dialTCP(os.Args[2:])
	case "stress":
		stress(os.Args[2:])
	default:
		fail("unknown command %s", os.Args[1])
	}
}
