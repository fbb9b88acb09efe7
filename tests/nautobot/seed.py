#!/usr/bin/env python3
"""Creates the fixtures the relay-mode tests expect, through the REST API.

Idempotent: every object is looked up first and created only when missing.
Standard library only; works with Nautobot 2.4 and 3.x.

Environment: NAUTOBOT_URL (default http://127.0.0.1:8080), NAUTOBOT_TOKEN
(default: the fixed test token of env.sh).

Objects (found or created):
  location type  "DHCP Test Site"  content types dcim.device, ipam.prefix
  location       "dhcp-test-site"  status Active
  role           "Server BMC"      content types ipam.prefix, ipam.ipaddress, dcim.device
  prefix         192.0.2.0/24      namespace Global, role Server BMC, type network
  manufacturer   "Dell", device type "PowerEdge R640"
  device         "bmc-test-01"     role Server BMC, location dhcp-test-site
  interface      "bmc0"            1000base-t, MAC 14:18:77:aa:bb:01
  IP address     192.0.2.10/24     type host, dns_name bmc-test-01, assigned to bmc0:
                                   the permanent lease of that MAC
With --with-custom-fields also the text custom fields pydhcp_mac,
pydhcp_expire and pydhcp_hostname on ipam.ipaddress (without it the daemon
creates them itself). --json PATH writes the ids to PATH; they are always
printed on stdout.
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

URL = os.environ.get("NAUTOBOT_URL", "http://127.0.0.1:8080").rstrip("/")
TOKEN = os.environ.get("NAUTOBOT_TOKEN", "0123456789abcdef0123456789abcdef01234567")

ROLE = "Server BMC"
PREFIX = "192.0.2.0/24"
DEVICE = "bmc-test-01"
INTERFACE = "bmc0"
MAC = "14:18:77:aa:bb:01"
STATIC_IP = "192.0.2.10/24"
CUSTOM_FIELDS = ("pydhcp_mac", "pydhcp_expire", "pydhcp_hostname")


class HttpError(Exception):
    def __init__(self, method, url, status, text):
        super().__init__(f"{method} {url}: HTTP {status}: {text}")
        self.status = status


def call(method, path, body=None, query=None):
    url = URL + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Token {TOKEN}")
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as e:
        raise HttpError(method, url, e.code, e.read().decode(errors="replace")) from None
    return json.loads(raw) if raw else None


def lookup(path, query):
    found = call("GET", path, query=query)
    if found["count"] > 1:
        sys.exit(f"seed: GET {path} {query} matches {found['count']} objects, expected one")
    return found["results"][0] if found["results"] else None


def need(path, query, body, what):
    obj = lookup(path, query)
    if obj is not None:
        print(f"found    {what} {obj['id']}", file=sys.stderr)
        return obj
    try:
        obj = call("POST", path, body)
    except HttpError as e:
        # Somebody else created it meanwhile: a 400, or a 500 from the
        # database's unique constraint.
        obj = lookup(path, query)
        if obj is None or e.status not in (400, 500):
            raise
    print(f"created  {what} {obj['id']}", file=sys.stderr)
    return obj


def ipaddress_custom_fields():
    # Custom fields cannot be filtered by key (HTTP 400): list and match.
    res = call("GET", "/api/extras/custom-fields/",
               query={"content_types": "ipam.ipaddress", "limit": 1000})
    return {cf["key"]: cf for cf in res["results"]}


def main():
    ap = argparse.ArgumentParser(description="Create the test fixtures in Nautobot.")
    ap.add_argument("--with-custom-fields", action="store_true",
                    help="also create the pydhcp_* custom fields on IP addresses")
    ap.add_argument("--json", metavar="PATH", help="write the ids of the objects to PATH")
    args = ap.parse_args()

    active = lookup("/api/extras/statuses/", {"name": "Active"})
    glob = lookup("/api/ipam/namespaces/", {"name": "Global"})
    if active is None or glob is None:
        sys.exit("seed: status Active or namespace Global missing: was setup.sh run?")

    loc_type = need("/api/dcim/location-types/", {"name": "DHCP Test Site"},
                    {"name": "DHCP Test Site", "content_types": ["dcim.device", "ipam.prefix"]},
                    "location type")
    location = need("/api/dcim/locations/", {"name": "dhcp-test-site"},
                    {"name": "dhcp-test-site", "location_type": loc_type["id"],
                     "status": active["id"]},
                    "location")
    role_types = {"ipam.prefix", "ipam.ipaddress", "dcim.device"}
    role = need("/api/extras/roles/", {"name": ROLE},
                {"name": ROLE, "content_types": sorted(role_types)}, "role")
    if not role_types <= set(role["content_types"]):
        role = call("PATCH", f"/api/extras/roles/{role['id']}/",
                    {"content_types": sorted(role_types | set(role["content_types"]))})
        print(f"updated  role content types {role['content_types']}", file=sys.stderr)
    prefix = need("/api/ipam/prefixes/", {"prefix": PREFIX, "namespace": glob["id"]},
                  {"prefix": PREFIX, "namespace": glob["id"], "status": active["id"],
                   "role": role["id"], "type": "network", "description": "DHCP tests"},
                  "prefix")
    maker = need("/api/dcim/manufacturers/", {"name": "Dell"}, {"name": "Dell"}, "manufacturer")
    dev_type = need("/api/dcim/device-types/",
                    {"model": "PowerEdge R640", "manufacturer": maker["id"]},
                    {"model": "PowerEdge R640", "manufacturer": maker["id"]}, "device type")
    device = need("/api/dcim/devices/", {"name": DEVICE, "location": location["id"]},
                  {"name": DEVICE, "device_type": dev_type["id"], "role": role["id"],
                   "location": location["id"], "status": active["id"]},
                  "device")
    iface = need("/api/dcim/interfaces/", {"device_id": device["id"], "name": INTERFACE},
                 {"device": device["id"], "name": INTERFACE, "type": "1000base-t",
                  "mac_address": MAC, "status": active["id"]},
                 "interface")
    address = need("/api/ipam/ip-addresses/", {"address": STATIC_IP, "namespace": glob["id"]},
                   {"address": STATIC_IP, "namespace": glob["id"], "status": active["id"],
                    "type": "host", "dns_name": DEVICE,
                    "description": f"permanent lease of {MAC}"},
                   "IP address")
    assignment = need("/api/ipam/ip-address-to-interface/",
                      {"ip_address": address["id"], "interface": iface["id"]},
                      {"ip_address": address["id"], "interface": iface["id"]},
                      "IP address assignment")

    ids = {
        "url": URL, "status": active["id"], "namespace": glob["id"],
        "location_type": loc_type["id"], "location": location["id"], "role": role["id"],
        "prefix": prefix["id"], "manufacturer": maker["id"], "device_type": dev_type["id"],
        "device": device["id"], "interface": iface["id"], "ip_address": address["id"],
        "ip_address_to_interface": assignment["id"],
        "prefix_cidr": PREFIX, "mac": MAC, "static_ip": STATIC_IP,
    }

    if args.with_custom_fields:
        fields = ipaddress_custom_fields()
        for key in CUSTOM_FIELDS:
            if key in fields:
                print(f"found    custom field {key} {fields[key]['id']}", file=sys.stderr)
            else:
                # Always with an explicit key: from the label alone a second
                # field would silently get the key "<label>_2".
                try:
                    fields[key] = call("POST", "/api/extras/custom-fields/",
                                       {"label": key, "key": key, "type": "text",
                                        "content_types": ["ipam.ipaddress"]})
                except HttpError as e:
                    fields = ipaddress_custom_fields()
                    if e.status != 400 or key not in fields:
                        raise
                print(f"created  custom field {key} {fields[key]['id']}", file=sys.stderr)
            ids[f"cf_{key}"] = fields[key]["id"]

    text = json.dumps(ids, indent=2)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    try:
        main()
    except HttpError as e:
        sys.exit(f"seed: {e}")
    except urllib.error.URLError as e:
        sys.exit(f"seed: cannot reach {URL}: {e.reason}")
