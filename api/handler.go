package api

import "net/http"

// The handler shape of nearly every endpoint: decode the request, call one
// service method, encode its answer. respond and serve are that shape, so
// a handler holds only the call.

// respond returns the function that writes a call's answer: v as JSON with
// status, or err (writeError). Use it as s.respond(w, r, st)(call(…)).
func (s *Server) respond(w http.ResponseWriter, r *http.Request, status int) func(v any, err error) {
	return func(v any, err error) {
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, status, v)
	}
}

// serve decodes the JSON body into an In (decode: bounded, strict), calls
// call with it and writes its answer (respond).
func serve[In, Out any](s *Server, w http.ResponseWriter, r *http.Request, status int, call func(in In) (Out, error)) {
	var in In
	if err := decode(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.respond(w, r, status)(call(in))
}
