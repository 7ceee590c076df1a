"""IOC extraction as a subprocess-per-call SOAR action: the same kinds of indicator
as the ioc-extract plugin (re-fanging, IPs, domains, URLs, e-mails, hashes), with the
standard library only. Domains are checked against a small suffix set rather than the
public suffix list, which only makes this side cheaper."""
import ipaddress
import json
import re
import sys

SUFFIXES = {"com", "net", "org", "io", "ru", "cn", "de", "uk", "info", "biz"}

def refang(text):
    text = re.sub(r"(?i)\bh(?:xx|\*\*)p(s?)\b", r"http\1", text)
    text = re.sub(r"\[\s*\.\s*\]|\(\s*\.\s*\)|\{\s*\.\s*\}", ".", text)
    text = re.sub(r"(?i)\[\s*(?:at|@)\s*\]|\(\s*(?:at|@)\s*\)", "@", text)
    return text.replace("[:]", ":")

def unique(items):
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen

def extract(text):
    text = refang(text)
    ipv4 = [m for m in re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", text) if all(int(p) < 256 for p in m.split("."))]
    ipv6 = []
    for m in re.findall(r"[0-9A-Fa-f:]*:[0-9A-Fa-f:]*", text):
        if m.count(":") >= 2:
            try:
                ipv6.append(str(ipaddress.IPv6Address(m)))
            except ValueError:
                pass
    domains = [d.lower() for d in re.findall(r"\b(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\b", text)
               if d.rsplit(".", 1)[-1].lower() in SUFFIXES]
    hashes = [h.lower() for h in re.findall(r"\b[0-9A-Fa-f]{32,64}\b", text)]
    return {
        "ipv4": unique(ipv4),
        "ipv6": unique(ipv6),
        "domains": unique(domains),
        "urls": unique(u.rstrip(".,;:!?") for u in re.findall(r"(?i)\bhttps?://[^\s<>\"'`\])}]+", text)),
        "emails": unique(e.lower() for e in re.findall(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,63}\b", text)),
        "md5": unique(h for h in hashes if len(h) == 32),
        "sha1": unique(h for h in hashes if len(h) == 40),
        "sha256": unique(h for h in hashes if len(h) == 64),
    }

print(json.dumps(extract(json.load(sys.stdin)["text"])))
