"""The standard library's socketserver, serving a ThreadingMixIn server's requests inline:
a WASI guest has no threads, so a threaded server (http.server's, werkzeug's, Flask's
app.run(threaded=True)) serves one request at a time instead of failing to start a thread."""
import _boxer_net

_boxer_net.load_real("socketserver", globals())


def _process_request_inline(self, request, client_address):
    self.process_request_thread(request, client_address)


ThreadingMixIn.process_request = _process_request_inline  # noqa: F821 - defined by the stdlib's code
