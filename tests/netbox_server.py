#!/usr/bin/env python3
"""A test double of the Netbox REST API for nfdhcpd's Netbox backend tests.

This is NOT Netbox. It implements only the endpoints and filters the backend
uses, over an in-memory data set, and renders every object the way Netbox's
own serializers do, so that the backend is tested against the answers a
real Netbox gives:

  GET   /api/status/
  GET   /api/extras/custom-fields/?name=
  GET   /api/extras/config-contexts/?site_id=&is_active=
  GET   /api/ipam/prefixes/?contains=
  GET   /api/ipam/ip-addresses/?parent=&status=&tag=&interface_id=
        &vminterface_id=&address=&id=&fields=&limit=&offset=
  GET   /api/ipam/ip-addresses/<id>/
  PATCH /api/ipam/ip-addresses/<id>/
  PATCH /api/ipam/ip-addresses/ (bulk: a list of {"id", ...}; ids that
        match nothing are skipped, one refused item fails the whole list
        and changes nothing; the answer lists the updated objects)
  GET   /api/dcim/interfaces/?mac_address=&device_id=&lag_id=&id=
  GET   /api/virtualization/interfaces/?mac_address=&virtual_machine_id=&id=
  GET   /api/dcim/devices/<id>/
  GET   /api/virtualization/virtual-machines/<id>/

Where the shapes come from:

- Field lists and nesting: the serializers of Netbox 3.7
  (netbox/{dcim,ipam,extras,virtualization}/api/serializers.py and
  nested_serializers.py) and of Netbox 4.x
  (netbox/*/api/serializers_/*.py): a related object is its nested
  ("brief") form; choice fields are {"value", "label"}; custom_fields holds
  every custom field of the object type, null when unset.
- Version differences, from the release notes and serializers: 4.0 adds
  `description` to brief forms, the `fields=` query parameter and the
  4.x /api/status/ keys; 4.1 adds `display_url`; 4.2 makes MAC addresses
  objects (interface `mac_address` read-only, `primary_mac_address`,
  `mac_addresses`; the `mac_address` filter matches any of them) and
  replaces a prefix's `site` by `scope_type`/`scope_id`/`scope`; 4.5 adds v2
  tokens (`Authorization: Bearer nbt_<key>.<secret>`); 4.6 adds weak ETags
  derived from `last_updated` (W/"<isoformat>" of the stored UTC time,
  whatever the time zone) and If-Match on PATCH (412 when stale). 3.x
  custom fields list `content_types`, 4.x `object_types`.
- Observed on a real Netbox 4.6.8 and rendered for 4.6: an ETag header on
  every single-object GET; an undefined custom field on PATCH answered
  {"custom_fields": {"<name>": "Custom field '<name>' does not exist for
  this object type."}}; date & time custom fields stored normalised
  (isoformat, `+00:00` as `Z`, no `.000000`); interface `cable_end` null and
  `connected_endpoints_reachable` false; config context `data_path` "";
  `owner` on objects; 403 {"detail": "Invalid v1 token"}.
- `created` and `last_updated` differ by microseconds, as the two
  timestamps of one save do. With --time-zone (Netbox's TIME_ZONE),
  date-times are shown in that zone (`+01:00`), as DRF renders them, while
  the ETag stays derived from the UTC time.
- Behaviour: the `API-Version` response header ("major.minor"), custom
  field data merged on PATCH, "Unknown field name" for undefined custom
  fields (before 4.6), 400 for a filter value naming no object (an unknown
  tag slug or interface id), 403 {"detail": "Invalid token"}, list
  pagination with
  count/next/previous/results, IP addresses ordered by address, config
  contexts by weight then name, rendered config context = contexts of the
  object's site and the unassigned ones merged by weight, then the
  object's local context data.

Test-only control endpoints (no Netbox equivalent) live under /_test/:
  POST /_test/load            replace the data set (JSON body)
  POST /_test/faults          add a fault: {"path", "method", "status",
                              "body", "content_type", "delay", "times"}
  POST /_test/faults/clear
  POST /_test/interfere       one-shot concurrent write on the next PATCH of
                              an address: {"ip", "custom_fields", "when":
                              "before"|"after"}
  POST /_test/ip/<id>         merge fields into a stored address
  GET  /_test/requests        the requests seen (method, path, auth, if_match)
  POST /_test/requests/clear
  GET  /_test/state           the data set as stored

Usage: netbox_server.py --data seed.json --api 4.6 [--port 0]
[--time-zone Europe/Berlin]; prints
"LISTENING <url>" once it accepts connections. --dump DIR writes the
answers to a fixed set of requests for 3.7 and 4.6 into DIR/v3 and DIR/v4
(the JSON the backend's unit tests map).
"""

import argparse
import copy
import ipaddress
import json
import os
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

IP_STATUS = {
    "active": "Active",
    "reserved": "Reserved",
    "deprecated": "Deprecated",
    "dhcp": "DHCP",
    "slaac": "SLAAC",
}
PREFIX_STATUS = {"active": "Active", "container": "Container", "reserved": "Reserved"}
CF_TYPES = {"text": "Text", "boolean": "Boolean (true/false)", "datetime": "Date & time"}
IFACE_TYPES = {
    "1000base-t": "1000BASE-T (1GE)",
    "10gbase-x-sfpp": "SFP+ (10GE)",
    "lag": "Link Aggregation Group (LAG)",
    "virtual": "Virtual",
}


def choice(value, labels):
    return {"value": value, "label": labels.get(value, value)}


def iso(ts):
    """DRF's rendering of a datetime: isoformat with +00:00 as Z."""
    s = ts.isoformat()
    return s[:-6] + "Z" if s.endswith("+00:00") else s


def parse_iso(s):
    return datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith("Z") else s)


def norm_mac(s):
    hexd = "".join(c for c in str(s) if c not in ":-.").upper()
    if len(hexd) != 12:
        return None
    return ":".join(hexd[i : i + 2] for i in range(0, 12, 2))


class Store:
    def __init__(self, data, api, tz=timezone.utc):
        self.lock = threading.RLock()
        self.api = api
        # Netbox's TIME_ZONE: the zone date-times are shown in.
        self.tz = tz
        self.faults = []
        self.requests = []
        self.interfere = {}
        self.clock = datetime(2025, 1, 6, 12, 0, 0, 123456, tzinfo=timezone.utc)
        self.load(data)

    def load(self, data):
        self.data = copy.deepcopy(data)
        for kind in (
            "sites", "tags", "prefixes", "devices", "virtual_machines", "interfaces",
            "vminterfaces", "config_contexts", "ip_addresses", "custom_fields",
        ):
            self.data.setdefault(kind, [])
        for obj in self.all_objects():
            # One save sets both, a few microseconds apart.
            obj.setdefault("created", iso(self.clock))
            obj.setdefault("last_updated", iso(self.clock + timedelta(microseconds=37)))
        self.data.setdefault("tokens", ["0123456789abcdef0123456789abcdef01234567"])

    def all_objects(self):
        for kind, objs in self.data.items():
            if isinstance(objs, list):
                for o in objs:
                    if isinstance(o, dict):
                        yield o

    def ge(self, major, minor):
        return self.api >= (major, minor)

    def shown(self, stored):
        """A stored (UTC) date-time as answers show it: in TIME_ZONE."""
        return iso(parse_iso(stored).astimezone(self.tz))

    def find(self, kind, oid):
        for o in self.data[kind]:
            if o["id"] == oid:
                return o
        return None

    def tick(self):
        # Every write moves last_updated, as Django's auto_now does.
        now = datetime.now(timezone.utc)
        self.clock = max(now, self.clock + timedelta(microseconds=1))
        return iso(self.clock)

    def cf_names(self, object_type):
        return sorted(
            cf["name"]
            for cf in self.data["custom_fields"]
            if object_type in cf.get("object_types", [])
        )

    def cf_data(self, obj, object_type):
        have = obj.get("custom_fields", {})
        return {n: have.get(n) for n in self.cf_names(object_type)}


class Render:
    """Netbox's serializers, for one API version."""

    def __init__(self, store, base):
        self.s = store
        self.base = base

    def url(self, path):
        return f"{self.base}/api/{path}"

    def head(self, path, oid, display, full=True):
        """id, url, display_url (4.1+: full objects and Nested*Serializers,
        not brief forms), display."""
        out = {"id": oid, "url": self.url(f"{path}{oid}/")}
        if full and self.s.ge(4, 1):
            out["display_url"] = f"{self.base}/{path}{oid}/"
        out["display"] = display
        return out

    def brief(self, out, obj):
        if self.s.ge(4, 0):
            out["description"] = obj.get("description", "")
        return out

    def site(self, sid):
        site = self.s.find("sites", sid)
        if site is None:
            return None
        out = self.head("dcim/sites/", sid, site["name"], full=False)
        out.update(name=site["name"], slug=site["slug"])
        return self.brief(out, site)

    def tag(self, tid):
        t = self.s.find("tags", tid)
        out = self.head("extras/tags/", tid, t["name"])
        out.update(name=t["name"], slug=t["slug"], color=t.get("color", "9e9e9e"))
        return out

    def device_brief(self, did, nested=False):
        d = self.s.find("devices", did)
        out = self.head("dcim/devices/", did, d["name"], full=nested)
        out["name"] = d["name"]
        return out if nested or not self.s.ge(4, 0) else self.brief(out, d)

    def vm_brief(self, vid):
        v = self.s.find("virtual_machines", vid)
        out = self.head("virtualization/virtual-machines/", vid, v["name"], full=False)
        out["name"] = v["name"]
        return self.brief(out, v)

    def iface_nested(self, iid):
        """NestedInterfaceSerializer (lag, parent, bridge)."""
        i = self.s.find("interfaces", iid)
        out = self.head("dcim/interfaces/", iid, i["name"])
        out["device"] = self.device_brief(i["device"], nested=True)
        out.update(name=i["name"], cable=None, _occupied=False)
        return out

    def iface_brief(self, iid):
        """InterfaceSerializer(nested=True): an address's assigned_object."""
        if not self.s.ge(4, 0):
            return self.iface_nested(iid)
        i = self.s.find("interfaces", iid)
        out = self.head("dcim/interfaces/", iid, i["name"], full=False)
        out["device"] = self.device_brief(i["device"])
        out.update(name=i["name"], description=i.get("description", ""), cable=None, _occupied=False)
        return out

    def vmiface_brief(self, iid):
        i = self.s.find("vminterfaces", iid)
        out = self.head("virtualization/interfaces/", iid, i["name"], full=False)
        out["virtual_machine"] = self.vm_brief(i["virtual_machine"])
        out["name"] = i["name"]
        return self.brief(out, i)

    def mac_brief(self, mac, mid):
        out = self.head("dcim/mac-addresses/", mid, mac, full=False)
        out["mac_address"] = mac
        out["description"] = ""
        return out

    def mac_fields(self, obj, id_base):
        macs = [norm_mac(m) for m in obj.get("macs", [])]
        if not self.s.ge(4, 2):
            return {"mac_address": macs[0] if macs else None}
        objs = [self.mac_brief(m, id_base * 10 + n) for n, m in enumerate(macs, 1)]
        return {
            "mac_address": macs[0] if macs else None,
            "primary_mac_address": objs[0] if objs else None,
            "mac_addresses": objs,
        }

    def ip_count(self, kind, iid):
        return sum(1 for ip in self.s.data["ip_addresses"] if ip.get("assigned") == [kind, iid])

    def common_tail(self, out, obj, object_type):
        out["tags"] = [self.tag(t) for t in obj.get("tags", [])]
        out["custom_fields"] = self.s.cf_data(obj, object_type)
        if self.s.ge(4, 6):
            out["owner"] = None
        out["created"] = self.s.shown(obj["created"])
        out["last_updated"] = self.s.shown(obj["last_updated"])
        return out

    def interface(self, i):
        new = self.s.ge(4, 6)
        out = self.head("dcim/interfaces/", i["id"], i["name"])
        out["device"] = self.device_brief(i["device"])
        out["vdcs"] = []
        out.update(
            module=None,
            name=i["name"],
            label="",
            type=choice(i.get("type", "1000base-t"), IFACE_TYPES),
            enabled=True,
            parent=None,
            bridge=None,
            lag=self.iface_nested(i["lag"]) if i.get("lag") else None,
            mtu=None,
        )
        mac = self.mac_fields(i, i["id"])
        out["mac_address"] = mac.pop("mac_address")
        out.update(mac)
        out.update(
            speed=None, duplex=None, wwn=None, mgmt_only=i.get("mgmt_only", False),
            description=i.get("description", ""), mode=None, rf_role=None, rf_channel=None,
            poe_mode=None, poe_type=None, rf_channel_frequency=None, rf_channel_width=None,
            tx_power=None, untagged_vlan=None, tagged_vlans=[], mark_connected=False,
            cable=None, cable_end=None if new else "", wireless_link=None, link_peers=[],
            link_peers_type=None, wireless_lans=[], vrf=None, l2vpn_termination=None,
            connected_endpoints=None, connected_endpoints_type=None,
            connected_endpoints_reachable=False if new else None,
        )
        self.common_tail(out, i, "dcim.interface")
        out["count_ipaddresses"] = self.ip_count("dcim.interface", i["id"])
        out["count_fhrp_groups"] = 0
        out["_occupied"] = False
        return out

    def vminterface(self, i):
        out = self.head("virtualization/interfaces/", i["id"], i["name"])
        out["virtual_machine"] = self.vm_brief(i["virtual_machine"])
        out.update(name=i["name"], enabled=True, parent=None, bridge=None, mtu=None)
        mac = self.mac_fields(i, 1000 + i["id"])
        out["mac_address"] = mac.pop("mac_address")
        out.update(mac)
        out.update(description=i.get("description", ""), mode=None, untagged_vlan=None,
                   tagged_vlans=[], vrf=None, l2vpn_termination=None)
        self.common_tail(out, i, "virtualization.vminterface")
        out["count_ipaddresses"] = self.ip_count("virtualization.vminterface", i["id"])
        out["count_fhrp_groups"] = 0
        return out

    def ip(self, ip):
        iface = ipaddress.ip_interface(ip["address"])
        out = self.head("ipam/ip-addresses/", ip["id"], ip["address"])
        out.update(
            family=choice(iface.version, {4: "IPv4", 6: "IPv6"}),
            address=ip["address"],
            vrf=None,
            tenant=None,
            status=choice(ip.get("status", "active"), IP_STATUS),
            role=None,
        )
        assigned = ip.get("assigned")
        if assigned:
            kind, oid = assigned
            out["assigned_object_type"] = kind
            out["assigned_object_id"] = oid
            out["assigned_object"] = (
                self.iface_brief(oid) if kind == "dcim.interface" else self.vmiface_brief(oid)
            )
        else:
            out.update(assigned_object_type=None, assigned_object_id=None, assigned_object=None)
        out.update(
            nat_inside=None,
            nat_outside=[],
            dns_name=ip.get("dns_name", ""),
            description=ip.get("description", ""),
            comments="",
        )
        return self.common_tail(out, ip, "ipam.ipaddress")

    def prefix(self, p):
        net = ipaddress.ip_network(p["prefix"])
        out = self.head("ipam/prefixes/", p["id"], p["prefix"])
        out["family"] = choice(net.version, {4: "IPv4", 6: "IPv6"})
        out["prefix"] = p["prefix"]
        if self.s.ge(4, 2):
            out["vrf"] = None
            sid = p.get("site")
            out["scope_type"] = "dcim.site" if sid else None
            out["scope_id"] = sid
            out["scope"] = self.site(sid) if sid else None
        else:
            out["site"] = self.site(p["site"]) if p.get("site") else None
            out["vrf"] = None
        out.update(
            tenant=None,
            vlan=None,
            status=choice(p.get("status", "active"), PREFIX_STATUS),
            role=None,
            is_pool=False,
            mark_utilized=False,
            description=p.get("description", ""),
            comments="",
        )
        self.common_tail(out, p, "ipam.prefix")
        out["children"] = 0
        out["_depth"] = p.get("_depth", 0)
        return out

    def context_for(self, obj):
        contexts = [
            c for c in self.s.data["config_contexts"]
            if c.get("is_active", True) and (not c.get("sites") or obj.get("site") in c["sites"])
        ]
        contexts.sort(key=lambda c: (c.get("weight", 1000), c["name"]))
        data = {}
        for c in contexts:
            data = deepmerge(data, c.get("data", {}))
        if obj.get("local_context_data"):
            data = deepmerge(data, obj["local_context_data"])
        return data

    def device(self, d):
        out = self.head("dcim/devices/", d["id"], d["name"])
        role = {"id": 1, "url": self.url("dcim/device-roles/1/"), "display": "BMC", "name": "BMC", "slug": "bmc"}
        dtype = {"id": 1, "url": self.url("dcim/device-types/1/"), "display": "PowerEdge R650",
                 "manufacturer": {"id": 1, "url": self.url("dcim/manufacturers/1/"), "display": "Dell",
                                  "name": "Dell", "slug": "dell"},
                 "model": "PowerEdge R650", "slug": "poweredge-r650"}
        out["name"] = d["name"]
        out["device_type"] = dtype
        if self.s.ge(4, 0):
            out["role"] = role
        else:
            out["device_role"] = role
            out["role"] = role
        out.update(
            tenant=None, platform=None, serial=d.get("serial", ""), asset_tag=None,
            site=self.site(d["site"]), location=None, rack=None, position=None, face=None,
            parent_device=None, status=choice("active", {"active": "Active"}), airflow=None,
            primary_ip=None, primary_ip4=None, primary_ip6=None, oob_ip=None, cluster=None,
            virtual_chassis=None, vc_position=None, vc_priority=None,
            description=d.get("description", ""), comments="", config_template=None,
            config_context=self.context_for(d),
            local_context_data=d.get("local_context_data"),
        )
        return self.common_tail(out, d, "dcim.device")

    def vm(self, v):
        out = self.head("virtualization/virtual-machines/", v["id"], v["name"])
        out.update(
            name=v["name"], status=choice("active", {"active": "Active"}),
            site=self.site(v["site"]) if v.get("site") else None, cluster=None, device=None,
            role=None, tenant=None, platform=None, primary_ip=None, primary_ip4=None,
            primary_ip6=None, vcpus=None, memory=None, disk=None,
            description=v.get("description", ""), comments="", config_template=None,
            local_context_data=v.get("local_context_data"),
        )
        self.common_tail(out, v, "virtualization.virtualmachine")
        out["config_context"] = self.context_for(v)
        return out

    def config_context(self, c):
        out = self.head("extras/config-contexts/", c["id"], c["name"])
        out.update(
            name=c["name"], weight=c.get("weight", 1000), description=c.get("description", ""),
            is_active=c.get("is_active", True), regions=[], site_groups=[],
            sites=[self.site(s) for s in c.get("sites", [])], locations=[], device_types=[],
            roles=[], platforms=[], cluster_types=[], cluster_groups=[], clusters=[],
            tenant_groups=[], tenants=[], tags=[], data_source=None,
            data_path="" if self.s.ge(4, 6) else None,
            data_file=None, data_synced=None, data=c.get("data", {}),
        )
        if self.s.ge(4, 6):
            out["owner"] = None
        out["created"] = self.s.shown(c["created"])
        out["last_updated"] = self.s.shown(c["last_updated"])
        return out

    def custom_field(self, cf):
        out = self.head("extras/custom-fields/", cf["id"], cf.get("label") or cf["name"])
        key = "object_types" if self.s.ge(4, 0) else "content_types"
        out[key] = cf.get("object_types", [])
        out["type"] = choice(cf.get("type", "text"), CF_TYPES)
        out["data_type"] = {"text": "string", "boolean": "boolean", "datetime": "string"}.get(
            cf.get("type", "text"), "string")
        out.update(
            name=cf["name"], label=cf.get("label", ""), group_name="", description="",
            required=False, search_weight=1000, filter_logic=choice("loose", {"loose": "Loose"}),
            default=None, weight=100, validation_minimum=None, validation_maximum=None,
            validation_regex="", choice_set=None,
        )
        if self.s.ge(4, 6):
            out["owner"] = None
        out["created"] = self.s.shown(cf["created"])
        out["last_updated"] = self.s.shown(cf["last_updated"])
        return out

    def status(self):
        v = "%d.%d.%d" % (self.s.api[0], self.s.api[1], 3)
        if self.s.ge(4, 0):
            return {
                "django-version": "5.1.4" if self.s.ge(4, 2) else "5.0.9",
                "hostname": "netbox-test",
                "installed_apps": {"django_filters": "24.3", "rest_framework": "3.15.2"},
                "netbox-version": v,
                "netbox-full-version": v + "-Docker",
                "plugins": {},
                "python-version": "3.12.3",
                "rq-workers-running": 1,
            }
        return {
            "django-version": "4.2.16",
            "installed-apps": {"django_filters": "23.5", "rest_framework": "3.14.0"},
            "netbox-version": v,
            "plugins": {},
            "python-version": "3.11.2",
            "rq-workers-running": 1,
        }


def deepmerge(a, b):
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deepmerge(out[k], v)
        else:
            out[k] = v
    return out


class ApiError(Exception):
    def __init__(self, status, body, headers=None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def bad_choice(param, value):
    raise ApiError(400, {param: [f"Select a valid choice. {value} is not one of the available choices."]})


def etag(obj):
    """Netbox 4.6: W/"<isoformat of last_updated>", from the stored UTC time
    (not as TIME_ZONE shows it)."""
    return f'W/"{parse_iso(obj["last_updated"]).astimezone(timezone.utc).isoformat()}"'


def etag_header(store, obj):
    return {"ETag": etag(obj)} if store.ge(4, 6) else {}


def paginate(render, path, q, items):
    limit = int(q.get("limit", ["50"])[-1] or 50)
    offset = int(q.get("offset", ["0"])[-1] or 0)
    limit = 1000 if limit == 0 or limit > 1000 else limit
    page = items[offset : offset + limit]
    base = f"{render.base}{path}"
    rest = {k: v for k, v in q.items() if k not in ("limit", "offset")}

    def link(off):
        qs = urllib.parse.urlencode({**rest, "limit": [str(limit)], "offset": [str(off)]}, doseq=True)
        return f"{base}?{qs}"

    return {
        "count": len(items),
        "next": link(offset + limit) if offset + limit < len(items) else None,
        "previous": link(max(0, offset - limit)) if offset > 0 else None,
        "results": page,
    }


def select_fields(store, q, obj):
    if not store.ge(4, 0) or "fields" not in q:
        return obj
    wanted = q["fields"][-1].split(",")
    return {k: v for k, v in obj.items() if k in wanted}


def int_list(q, name):
    out = []
    for v in q.get(name, []):
        try:
            out.append(int(v))
        except ValueError:
            raise ApiError(400, {name: [f"“{v}” is not a valid value."]})
    return out


class Api:
    def __init__(self, store):
        self.s = store

    def handle(self, method, path, q, body, headers, base):
        r = Render(self.s, base)
        parts = [p for p in path.split("/") if p]
        if parts[:1] != ["api"]:
            raise ApiError(404, {"detail": "Not found."})
        self.auth(headers)
        rest = parts[1:]
        if method == "GET" and rest == ["status"]:
            return r.status()
        if len(rest) >= 2:
            app, model = rest[0], rest[1]
            oid = None
            if len(rest) == 3:
                try:
                    oid = int(rest[2])
                except ValueError:
                    raise ApiError(404, self.not_found(model))
            elif len(rest) != 2:
                raise ApiError(404, {"detail": "Not found."})
            key = f"{app}/{model}"
            if method == "PATCH" and key == "ipam/ip-addresses" and oid is not None:
                return self.patch_ip(r, oid, body, headers)
            if method == "PATCH" and key == "ipam/ip-addresses":
                return self.bulk_patch_ip(r, body)
            if method != "GET":
                raise ApiError(405, {"detail": f'Method "{method}" not allowed.'})
            handler = {
                "ipam/prefixes": self.prefixes,
                "ipam/ip-addresses": self.ip_addresses,
                "dcim/interfaces": self.interfaces,
                "virtualization/interfaces": self.vminterfaces,
                "dcim/devices": self.devices,
                "virtualization/virtual-machines": self.vms,
                "extras/config-contexts": self.config_contexts,
                "extras/custom-fields": self.custom_fields,
            }.get(key)
            if handler is None:
                raise ApiError(404, {"detail": "Not found."})
            return handler(r, path, q, oid)
        raise ApiError(404, {"detail": "Not found."})

    def not_found(self, model):
        names = {
            "ip-addresses": "IPAddress", "devices": "Device", "interfaces": "Interface",
            "virtual-machines": "VirtualMachine", "prefixes": "Prefix",
        }
        if self.s.ge(4, 0):
            return {"detail": f"No {names.get(model, 'object')} matches the given query."}
        return {"detail": "Not found."}

    def auth(self, headers):
        value = headers.get("Authorization")
        if not value:
            raise ApiError(403, {"detail": "Authentication credentials were not provided."})
        scheme, _, token = value.partition(" ")
        tokens = self.s.data["tokens"]
        if scheme == "Token" and token in tokens and not token.startswith("nbt_"):
            return
        if scheme == "Bearer" and self.s.ge(4, 5) and token.startswith("nbt_") and token in tokens:
            return
        if self.s.ge(4, 6):
            raise ApiError(403, {"detail": "Invalid v2 token" if scheme == "Bearer" else "Invalid v1 token"})
        raise ApiError(403, {"detail": "Invalid token"})

    def one(self, r, kind, oid, render, model):
        obj = self.s.find(kind, oid)
        if obj is None:
            raise ApiError(404, self.not_found(model))
        return render(obj), etag_header(self.s, obj)

    def prefixes(self, r, path, q, oid):
        if oid is not None:
            return self.one(r, "prefixes", oid, r.prefix, "prefixes")
        items = self.s.data["prefixes"]
        for c in q.get("contains", []):
            try:
                addr = ipaddress.ip_network(c, strict=False)
            except ValueError:
                return paginate(r, path, q, [])
            items = [
                p for p in items
                if addr.version == ipaddress.ip_network(p["prefix"]).version
                and addr.subnet_of(ipaddress.ip_network(p["prefix"]))
            ]
        items = sorted(items, key=lambda p: (ipaddress.ip_network(p["prefix"]).network_address,
                                             ipaddress.ip_network(p["prefix"]).prefixlen))
        return paginate(r, path, q, [r.prefix(p) for p in items])

    def ip_addresses(self, r, path, q, oid):
        if oid is not None:
            obj = self.s.find("ip_addresses", oid)
            if obj is None:
                raise ApiError(404, self.not_found("ip-addresses"))
            return r.ip(obj), etag_header(self.s, obj)
        items = list(self.s.data["ip_addresses"])
        if "parent" in q:
            nets = []
            for p in q["parent"]:
                try:
                    nets.append(ipaddress.ip_network(p.strip(), strict=False))
                except ValueError:
                    return paginate(r, path, q, [])
            items = [i for i in items
                     if any(ipaddress.ip_interface(i["address"]).ip in n for n in nets)]
        if "status" in q:
            for s in q["status"]:
                if s not in IP_STATUS:
                    bad_choice("status", s)
            items = [i for i in items if i.get("status", "active") in q["status"]]
        if "tag" in q:
            slugs = {t["slug"]: t["id"] for t in self.s.data["tags"]}
            for t in q["tag"]:
                if t not in slugs:
                    bad_choice("tag", t)
            # Netbox ANDs repeated tag filters.
            for t in q["tag"]:
                items = [i for i in items if slugs[t] in i.get("tags", [])]
        for param, kind, store in (
            ("interface_id", "dcim.interface", "interfaces"),
            ("vminterface_id", "virtualization.vminterface", "vminterfaces"),
        ):
            if param in q:
                ids = int_list(q, param)
                for i in ids:
                    if self.s.find(store, i) is None:
                        bad_choice(param, i)
                items = [i for i in items if i.get("assigned") and i["assigned"][0] == kind
                         and i["assigned"][1] in ids]
        if "id" in q:
            ids = int_list(q, "id")
            items = [i for i in items if i["id"] in ids]
        if "address" in q:
            want = {str(ipaddress.ip_interface(a).ip) if "/" in a else a for a in q["address"]}
            items = [i for i in items if str(ipaddress.ip_interface(i["address"]).ip) in want]
        items.sort(key=lambda i: (ipaddress.ip_interface(i["address"]).ip, i["id"]))
        return paginate(r, path, q, [select_fields(self.s, q, r.ip(i)) for i in items])

    def mac_filter(self, items, q):
        if "mac_address" not in q:
            return items
        want = {norm_mac(m) for m in q["mac_address"]}
        return [i for i in items if want & {norm_mac(m) for m in i.get("macs", [])}]

    def interfaces(self, r, path, q, oid):
        if oid is not None:
            return self.one(r, "interfaces", oid, r.interface, "interfaces")
        items = self.mac_filter(self.s.data["interfaces"], q)
        for param, field in (("device_id", "device"), ("lag_id", "lag"), ("id", "id")):
            if param in q:
                ids = int_list(q, param)
                items = [i for i in items if i.get(field) in ids]
        items = sorted(items, key=lambda i: (i["device"], i["name"], i["id"]))
        return paginate(r, path, q, [r.interface(i) for i in items])

    def vminterfaces(self, r, path, q, oid):
        if oid is not None:
            return self.one(r, "vminterfaces", oid, r.vminterface, "interfaces")
        items = self.mac_filter(self.s.data["vminterfaces"], q)
        for param, field in (("virtual_machine_id", "virtual_machine"), ("id", "id")):
            if param in q:
                ids = int_list(q, param)
                items = [i for i in items if i.get(field) in ids]
        items = sorted(items, key=lambda i: (i["virtual_machine"], i["name"], i["id"]))
        return paginate(r, path, q, [r.vminterface(i) for i in items])

    def devices(self, r, path, q, oid):
        if oid is None:
            return paginate(r, path, q, [r.device(d) for d in self.s.data["devices"]])
        return self.one(r, "devices", oid, r.device, "devices")

    def vms(self, r, path, q, oid):
        if oid is None:
            return paginate(r, path, q, [r.vm(v) for v in self.s.data["virtual_machines"]])
        return self.one(r, "virtual_machines", oid, r.vm, "virtual-machines")

    def config_contexts(self, r, path, q, oid):
        items = list(self.s.data["config_contexts"])
        if "site_id" in q:
            ids = int_list(q, "site_id")
            for i in ids:
                if self.s.find("sites", i) is None:
                    bad_choice("site_id", i)
            items = [c for c in items if set(c.get("sites", [])) & set(ids)]
        if "is_active" in q:
            want = q["is_active"][-1].lower() in ("true", "1", "yes")
            items = [c for c in items if c.get("is_active", True) == want]
        items.sort(key=lambda c: (c.get("weight", 1000), c["name"]))
        return paginate(r, path, q, [r.config_context(c) for c in items])

    def custom_fields(self, r, path, q, oid):
        items = list(self.s.data["custom_fields"])
        if "name" in q:
            items = [c for c in items if c["name"] in q["name"]]
        items.sort(key=lambda c: (c.get("weight", 100), c["name"]))
        return paginate(r, path, q, [r.custom_field(c) for c in items])

    def bulk_patch_ip(self, r, body):
        """Netbox's BulkUpdateModelMixin: no If-Match, all or nothing."""
        if not isinstance(body, list) or not all(
                isinstance(o, dict) and isinstance(o.get("id"), int) for o in body):
            raise ApiError(400, [{"id": ["This field is required."]}])
        saved = copy.deepcopy(self.s.data)
        done = []
        try:
            for item in body:
                oid = item["id"]
                if self.s.find("ip_addresses", oid) is None:
                    continue
                self.patch_ip(r, oid, {k: v for k, v in item.items() if k != "id"}, {})
                done.append(oid)
        except ApiError:
            self.s.data = saved
            raise
        objs = [self.s.find("ip_addresses", oid) for oid in done]
        objs.sort(key=lambda o: ipaddress.ip_interface(o["address"]))
        return [r.ip(o) for o in objs], {}

    def patch_ip(self, r, oid, body, headers):
        obj = self.s.find("ip_addresses", oid)
        if obj is None:
            raise ApiError(404, self.not_found("ip-addresses"))
        if not isinstance(body, dict):
            raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]})
        hook = self.s.interfere.get(oid)
        if hook and hook.get("when") == "before":
            del self.s.interfere[oid]
            obj.setdefault("custom_fields", {}).update(hook.get("custom_fields", {}))
            obj["last_updated"] = self.s.tick()
        if self.s.ge(4, 6):
            match = headers.get("If-Match")
            if match and match != "*":
                current = etag(obj)
                if current not in [m.strip() for m in match.split(",")]:
                    raise ApiError(412, {"detail": "Precondition failed."}, {"ETag": current})
        cfs = body.get("custom_fields")
        if cfs is not None:
            if not isinstance(cfs, dict):
                raise ApiError(400, {"custom_fields": ["Invalid data. Expected a dictionary."]})
            known = set(self.s.cf_names("ipam.ipaddress"))
            unknown = sorted(name for name in cfs if name not in known)
            if unknown and self.s.ge(4, 6):
                raise ApiError(400, {"custom_fields": {
                    name: f"Custom field '{name}' does not exist for this object type."
                    for name in unknown}})
            if unknown:
                name = next(name for name in cfs if name not in known)
                raise ApiError(400, {"custom_fields": [f"Unknown field name '{name}' in custom field data."]})
            cfs = dict(cfs)
            for cf in self.s.data["custom_fields"]:
                v = cfs.get(cf["name"])
                if cf["name"] in cfs and v is not None and cf.get("type") == "datetime":
                    try:
                        when = datetime.fromisoformat(v)
                    except (TypeError, ValueError):
                        raise ApiError(400, {"custom_fields": [
                            f"Invalid value for custom field '{cf['name']}': Date and time values must be in ISO 8601 format (YYYY-MM-DD HH:MM:SS)."]})
                    if self.s.ge(4, 6):
                        cfs[cf["name"]] = iso(when)
            obj.setdefault("custom_fields", {}).update(cfs)
        for field in ("dns_name", "description"):
            if field in body:
                obj[field] = body[field]
        if "status" in body:
            if body["status"] not in IP_STATUS:
                bad_choice("status", body["status"])
            obj["status"] = body["status"]
        obj["last_updated"] = self.s.tick()
        # The answer is the object as saved; a write that lands right after
        # is not in it, as with Netbox.
        out = r.ip(obj)
        headers = etag_header(self.s, obj)
        if hook and hook.get("when") == "after":
            del self.s.interfere[oid]
            obj.setdefault("custom_fields", {}).update(hook.get("custom_fields", {}))
            obj["last_updated"] = self.s.tick()
        return out, headers


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""

    def log_message(self, fmt, *args):
        if os.environ.get("NETBOX_DOUBLE_LOG"):
            sys.stderr.write("netbox-double: " + fmt % args + "\n")

    def do_GET(self):
        self.dispatch("GET")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def send(self, status, body, ctype="application/json", extra=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Vary", "Accept, Cookie, Origin")
        self.send_header("Allow", "GET, PUT, PATCH, DELETE, HEAD, OPTIONS")
        if self.path.startswith("/api/"):
            self.send_header("API-Version", "%d.%d" % self.server.store.api)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def dispatch(self, method):
        store = self.server.store
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        if url.path.startswith("/_test/"):
            return self.control(method, url.path, raw)
        with store.lock:
            store.requests.append({
                "method": method,
                "path": self.path,
                "auth": self.headers.get("Authorization", ""),
                "if_match": self.headers.get("If-Match"),
            })
            fault = None
            for f in store.faults:
                if f.get("times", -1) == 0:
                    continue
                if f.get("method", "*") not in ("*", method):
                    continue
                if not self.path.startswith(f.get("path", "/")):
                    continue
                fault = dict(f)
                if f.get("times", -1) > 0:
                    f["times"] -= 1
                break
        if fault:
            if fault.get("delay"):
                time.sleep(fault["delay"])
            if "status" in fault:
                body = fault.get("body", "")
                if isinstance(body, (dict, list)):
                    return self.send(fault["status"], body)
                return self.send(fault["status"], body.encode(),
                                 fault.get("content_type", "text/html; charset=utf-8"))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self.send(400, {"detail": "JSON parse error - Expecting value: line 1 column 1 (char 0)"})
        base = f"http://{self.headers.get('Host', 'localhost')}"
        try:
            with store.lock:
                out = Api(store).handle(method, url.path, q, body, self.headers, base)
        except ApiError as e:
            return self.send(e.status, e.body, extra=e.headers)
        headers = {}
        if isinstance(out, tuple):
            out, headers = out
        self.send(200, out, extra=headers)

    def control(self, method, path, raw):
        store = self.server.store
        body = json.loads(raw) if raw else None
        with store.lock:
            if method == "POST" and path == "/_test/load":
                store.load(body)
            elif method == "POST" and path == "/_test/faults":
                store.faults.append(body)
            elif method == "POST" and path == "/_test/faults/clear":
                store.faults.clear()
            elif method == "POST" and path == "/_test/interfere":
                store.interfere[body["ip"]] = body
            elif method == "POST" and path.startswith("/_test/ip/"):
                obj = store.find("ip_addresses", int(path.rsplit("/", 1)[1]))
                if obj is None:
                    return self.send(404, {"detail": "Not found."})
                for k, v in body.items():
                    if k == "custom_fields":
                        obj.setdefault("custom_fields", {}).update(v)
                    else:
                        obj[k] = v
                obj["last_updated"] = store.tick()
            elif method == "GET" and path == "/_test/requests":
                return self.send(200, store.requests)
            elif method == "POST" and path == "/_test/requests/clear":
                store.requests.clear()
            elif method == "GET" and path == "/_test/state":
                return self.send(200, store.data)
            else:
                return self.send(404, {"detail": "no such control"})
        self.send(200, {"ok": True})


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Clients drop kept-alive connections when they are done (or time
        # out); that is not the double's error.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def parse_api(s):
    major, minor = s.split(".")[:2]
    return int(major), int(minor)


DUMP = [
    ("status.json", "GET", "/api/status/"),
    ("custom_fields.json", "GET",
     "/api/extras/custom-fields/?name=pydhcp_mac&name=pydhcp_expire&name=pydhcp_hostname"),
    ("prefixes_contains.json", "GET", "/api/ipam/prefixes/?contains=192.0.2.1&limit=1000"),
    ("interfaces_mac.json", "GET", "/api/dcim/interfaces/?mac_address=14%3A18%3A77%3AAA%3ABB%3A01&limit=50"),
    ("interfaces_lag_shared.json", "GET", "/api/dcim/interfaces/?mac_address=3C%3AFD%3AFE%3A00%3A00%3A01&limit=50"),
    ("interfaces_device.json", "GET", "/api/dcim/interfaces/?device_id=3&limit=1000"),
    ("vminterfaces_mac.json", "GET",
     "/api/virtualization/interfaces/?mac_address=52%3A54%3A00%3A00%3A00%3A01&limit=50"),
    ("ip_addresses_static.json", "GET", "/api/ipam/ip-addresses/?interface_id=1&limit=50"),
    ("ip_addresses_pool.json", "GET",
     "/api/ipam/ip-addresses/?parent=192.0.2.0%2F24&status=dhcp&limit=1000&offset=0"),
    ("ip_addresses_gateway.json", "GET", "/api/ipam/ip-addresses/?parent=192.0.2.0%2F24&tag=gateway&limit=50"),
    ("ip_address.json", "GET", "/api/ipam/ip-addresses/21/"),
    ("device.json", "GET", "/api/dcim/devices/1/"),
    ("virtual_machine.json", "GET", "/api/virtualization/virtual-machines/1/"),
    ("config_contexts_site.json", "GET", "/api/extras/config-contexts/?site_id=1&is_active=true&limit=1000"),
    ("tag_unknown_400.json", "GET", "/api/ipam/ip-addresses/?parent=192.0.2.0%2F24&tag=nosuchtag"),
    ("not_found_404.json", "GET", "/api/ipam/ip-addresses/999/"),
]


def dump(data, outdir):
    for api, sub in (((3, 7), "v3"), ((4, 6), "v4")):
        store = Store(data, api)
        os.makedirs(os.path.join(outdir, sub), exist_ok=True)
        for name, method, target in DUMP:
            url = urllib.parse.urlsplit(target)
            q = urllib.parse.parse_qs(url.query, keep_blank_values=True)
            headers = {"Authorization": "Token " + store.data["tokens"][0]}
            try:
                out = Api(store).handle(method, url.path, q, None, headers, "https://netbox.example.com")
            except ApiError as e:
                out = e.body
            if isinstance(out, tuple):
                out = out[0]
            with open(os.path.join(outdir, sub, name), "w") as f:
                json.dump(out, f, indent=2)
                f.write("\n")
        try:
            Api(store).handle("GET", "/api/status/", {}, None, {"Authorization": "Token x"}, "")
        except ApiError as e:
            with open(os.path.join(outdir, sub, "invalid_token_403.json"), "w") as f:
                json.dump(e.body, f, indent=2)
                f.write("\n")
        try:
            Api(store).handle("PATCH", "/api/ipam/ip-addresses/21/", {},
                              {"custom_fields": {"pydhcp_lease": "x"}},
                              {"Authorization": "Token " + store.data["tokens"][0]}, "")
        except ApiError as e:
            with open(os.path.join(outdir, sub, "unknown_custom_field_400.json"), "w") as f:
                json.dump(e.body, f, indent=2)
                f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--api", default="4.6", help="Netbox API version to mimic, major.minor")
    ap.add_argument("--time-zone", default="UTC", help="Netbox's TIME_ZONE, e.g. Europe/Berlin")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--dump", metavar="DIR")
    args = ap.parse_args()
    with open(args.data) as f:
        data = json.load(f)
    if args.dump:
        dump(data, args.dump)
        return
    server = Server((args.host, args.port), Handler)
    server.store = Store(data, parse_api(args.api), ZoneInfo(args.time_zone))
    host, port = server.server_address[:2]
    print(f"LISTENING http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
