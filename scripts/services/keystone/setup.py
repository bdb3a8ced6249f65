"""Test stacks only: what the tests need in a freshly bootstrapped Keystone,
made through Keystone's own v3 API as its admin (keystone.sh runs this with
the venv's python).

  setup.py URL ADMIN_PASSWORD users
      creates the projects `sextant` and `service`, the users
      sextant-reader (reader on sextant), sextant-member (member on
      sextant), sextant-service (service on service) with random
      passwords, and an application credential of the admin's; prints
      `export NAME=VALUE` lines for them.

  setup.py URL ADMIN_PASSWORD endpoint TYPE NAME URL
      registers a service of TYPE (named NAME) with public, internal and
      admin endpoints at URL in RegionOne (nova.sh calls it for compute and
      placement).
"""

import json
import secrets
import sys
import urllib.error
import urllib.request


class Keystone:
    def __init__(self, url, password):
        self.url = url.rstrip("/")
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
        reply, headers = self.call("POST", "/auth/tokens", body, token=None)
        self.token = headers["X-Subject-Token"]
        self.admin_id = reply["token"]["user"]["id"]

    def call(self, method, path, body=None, token=""):
        req = urllib.request.Request(self.url + path, method=method)
        req.add_header("Content-Type", "application/json")
        if token is not None:
            req.add_header("X-Auth-Token", token or self.token)
        data = json.dumps(body).encode() if body is not None else None
        try:
            with urllib.request.urlopen(req, data, timeout=30) as r:
                text = r.read()
                return (json.loads(text) if text else {}), r.headers
        except urllib.error.HTTPError as e:
            raise SystemExit(f"keystone {method} {path}: {e.code} {e.read()[:300]!r}")

    def role(self, name):
        return self.call("GET", f"/roles?name={name}")[0]["roles"][0]["id"]

    def project(self, name):
        return self.call("POST", "/projects", {"project": {
            "name": name, "domain_id": "default"}})[0]["project"]["id"]

    def user(self, name, project, role):
        password = secrets.token_urlsafe(18)
        uid = self.call("POST", "/users", {"user": {
            "name": name, "domain_id": "default", "password": password,
            "default_project_id": project}})[0]["user"]["id"]
        self.call("PUT", f"/projects/{project}/users/{uid}/roles/{self.role(role)}")
        return password


def setup(k):
    sextant = k.project("sextant")
    service = k.project("service")
    env = {
        "SEXTANT_TEST_KEYSTONE_READER_PASSWORD": k.user("sextant-reader", sextant, "reader"),
        "SEXTANT_TEST_KEYSTONE_MEMBER_PASSWORD": k.user("sextant-member", sextant, "member"),
        "SEXTANT_TEST_KEYSTONE_SERVICE_PASSWORD": k.user("sextant-service", service, "service"),
    }
    cred = k.call("POST", f"/users/{k.admin_id}/application_credentials", {
        "application_credential": {"name": "sextant-tests"}})[0]["application_credential"]
    env["SEXTANT_TEST_KEYSTONE_APP_CRED_ID"] = cred["id"]
    env["SEXTANT_TEST_KEYSTONE_APP_CRED_SECRET"] = cred["secret"]
    for name, value in env.items():
        print(f"export {name}='{value}'")


def endpoint(k, kind, name, url):
    sid = k.call("POST", "/services", {"service": {
        "type": kind, "name": name, "enabled": True}})[0]["service"]["id"]
    for interface in ("public", "internal", "admin"):
        k.call("POST", "/endpoints", {"endpoint": {
            "service_id": sid, "interface": interface, "url": url,
            "region_id": "RegionOne", "enabled": True}})


def main(argv):
    k = Keystone(argv[1], argv[2])
    if argv[3] == "endpoint":
        endpoint(k, argv[4], argv[5], argv[6])
    else:
        setup(k)


if __name__ == "__main__":
    main(sys.argv)
