"""A local stand-in for the telemetry endpoint, for scripts/demo: accepts POSTed reports and
answers with a latest version, as the real service does."""
import http.server
import json
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        report = json.loads(self.rfile.read(length) or b"{}")
        print("report from", report.get("db_uuid"), flush=True)
        body = json.dumps({"current_timescaledb_version": "0.1.0"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
