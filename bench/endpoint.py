"""Local endpoint for the benchmark: answers a version (ok), never answers (hang), or drips one
byte every 0.5 s (drip). Logs, per request, when it arrived, the report's db_uuid, and how long the client stayed."""
import http.server
import json
import socketserver
import sys
import time

MODE, PORT = sys.argv[1], int(sys.argv[2])


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        start = time.time()
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            uuid = json.loads(body).get("db_uuid")
        except ValueError:
            uuid = None
        print(f"arrived {start:.3f}\nuuid {uuid}", flush=True)
        try:
            if MODE == "ok":
                body = json.dumps({"current_timescaledb_version": "0.1.0"}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif MODE == "hang":
                time.sleep(600)
            else:  # drip
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                for _ in range(1200):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.5)
        except (BrokenPipeError, ConnectionResetError):
            pass
        print(f"held {time.time() - start:.3f}", flush=True)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


Server(("127.0.0.1", PORT), Handler).serve_forever()
