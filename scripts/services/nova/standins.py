"""Test stacks only: the read-only parts of Glance and Neutron that Nova
needs to boot and move a server with "networks": "none" on its fake virt
driver. Not OpenStack code.

    standins.py GLANCE_PORT NEUTRON_PORT IMAGE_ID

Glance serves the image IMAGE_ID to boot from (and the image schemas
glanceclient reads: every base attribute must be listed in the schema's
properties, or Nova files them as image properties), and keeps in memory
the images Nova creates, updates and deletes (shelving snapshots the
server into one; the fake virt driver uploads no data). Neutron answers empty collections
(Nova still asks for ports and extensions, for security groups and
port-binding checks during migrations). Both bind 127.0.0.1 only."""

import json
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


def image(image_id):
    return {
        "id": image_id, "name": "sextant-test-image", "status": "active",
        "visibility": "public", "protected": False, "os_hidden": False,
        "container_format": "bare", "disk_format": "raw", "min_disk": 0,
        "min_ram": 0, "size": 1048576, "virtual_size": None, "checksum": None,
        "os_hash_algo": None, "os_hash_value": None, "owner": "admin",
        "tags": [], "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z", "self": "/v2/images/" + image_id,
        "file": "/v2/images/%s/file" % image_id, "schema": "/v2/schemas/image",
    }


def glance_routes(image_id, port):
    img = image(image_id)
    schema = {"name": "image", "additionalProperties": {"type": "string"},
              "properties": {k: {} for k in img}}
    images = {image_id: img}
    lock = threading.Lock()

    def route(method, path, body):
        p = path.rstrip("/")
        with lock:
            if method == "POST" and p == "/v2/images":
                new = image(str(uuid.uuid4()))
                new.update({k: v for k, v in (body or {}).items() if k != "id"})
                images[new["id"]] = new
                return 201, new
            parts = p.split("/")
            if len(parts) >= 4 and parts[:3] == ["", "v2", "images"] and parts[3] in images:
                found = images[parts[3]]
                if method == "DELETE" and len(parts) == 4:
                    del images[parts[3]]
                    return 204, None
                if method in ("PUT", "PATCH") or len(parts) > 4:
                    return (204, None) if len(parts) > 4 else (200, found)
                return 200, found
        if p in ("", "/versions"):
            return 300, {"versions": [{"id": "v2.16", "status": "CURRENT", "links": [
                {"rel": "self", "href": "http://127.0.0.1:%d/v2/" % port}]}]}
        if p == "/v2/schemas/image":
            return 200, schema
        if p == "/v2/schemas/images":
            return 200, {"name": "images", "links": [], "properties": {
                "images": {"type": "array", "items": schema}}}
        if p == "/v2/images":
            return 200, {"images": list(images.values()), "schema": "/v2/schemas/images",
                         "first": "/v2/images"}
        return 404, {"message": "no such image resource: %s" % path}
    return route


def neutron_route(method, path, body):
    p = path.rstrip("/")
    if p in ("", "/v2.0"):
        return 200, {"versions": [{"id": "v2.0", "status": "CURRENT"}]}
    if p == "/v2.0/extensions":
        return 200, {"extensions": []}
    for coll in ("ports", "networks", "subnets", "security-groups",
                 "floatingips", "qos/policies", "trunks"):
        if p == "/v2.0/" + coll:
            return 200, {coll.split("/")[-1].replace("-", "_"): []}
    return 404, {"NeutronError": {"message": "no such resource: %s" % path}}


def handler(route):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                sent = json.loads(raw) if raw.strip() else None
            except ValueError:
                sent = None  # an upload, not JSON
            code, body = route(self.command, urlparse(self.path).path,
                               sent if isinstance(sent, dict) else None)
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer

        def log_message(self, fmt, *args):
            sys.stderr.write("%s %s\n" % (self.command, self.path))
    return Handler


def main():
    glance_port, neutron_port, image_id = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    glance = ThreadingHTTPServer(("127.0.0.1", glance_port),
                                 handler(glance_routes(image_id, glance_port)))
    neutron = ThreadingHTTPServer(("127.0.0.1", neutron_port), handler(neutron_route))
    threading.Thread(target=glance.serve_forever, daemon=True).start()
    neutron.serve_forever()


if __name__ == "__main__":
    main()
