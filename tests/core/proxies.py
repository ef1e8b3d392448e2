"""The shipped proxy configs (deploy/nginx.conf, deploy/Caddyfile) run for real in front of any
number of web and events processes, on free loopback ports, with TLS when asked."""

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _config(name: str) -> str:
    return (ROOT / "deploy" / name).read_text()


def self_signed_certificate(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, valid one day, and its key."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def nginx_command(
    tmp: Path, *, web: list[int], events: list[int], port: int, tls_port: int | None = None
) -> list[str]:
    """deploy/nginx.conf as shipped, its upstreams pointed at these ports, listening on `port`
    (and, with `tls_port`, its `#tls` lines switched on with a self-signed certificate)."""
    site = _config("nginx.conf")
    for default, ports in (("127.0.0.1:8000", web), ("127.0.0.1:8001", events)):
        line = f"    server {default};\n"
        assert site.count(line) == 1, f"deploy/nginx.conf lost its upstream {default}"
        site = site.replace(line, "".join(f"    server 127.0.0.1:{p};\n" for p in ports))
    assert site.count("    listen 80;\n") == 1
    site = site.replace("    listen 80;\n", f"    listen 127.0.0.1:{port};\n")
    if tls_port is not None:
        cert, key = self_signed_certificate(tmp)
        site = site.replace("#tls ", "")
        assert "listen 443 ssl http2;" in site, "deploy/nginx.conf lost its TLS example"
        site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{tls_port} ssl http2;")
        site = site.replace("/etc/letsencrypt/live/clientdesk.example.com/fullchain.pem", str(cert))
        site = site.replace("/etc/letsencrypt/live/clientdesk.example.com/privkey.pem", str(key))
    (tmp / "site.conf").write_text(site)
    temp = {kind: tmp / kind for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    main = tmp / "nginx.conf"
    main.write_text(
        f"daemon off; pid {tmp / 'nginx.pid'}; error_log {tmp / 'nginx-error.log'} info;\n"
        "events { worker_connections 1024; }\n"
        f"http {{ access_log {tmp / 'nginx-access.log'};\n"
        + "".join(f" {kind}_temp_path {path};\n" for kind, path in temp.items())
        + f" include {tmp / 'site.conf'}; }}\n"
    )
    return [shutil.which("nginx") or "nginx", "-p", str(tmp), "-c", str(main)]


def caddy_command(tmp: Path, *, web: list[int], events: list[int], port: int) -> list[str]:
    """deploy/Caddyfile as shipped, as a plain-HTTP site on `port` (as its comment shows)."""
    site = _config("Caddyfile")
    for default, ports in (("127.0.0.1:8000", web), ("127.0.0.1:8001", events)):
        assert site.count(f"reverse_proxy {default}") == 1
        site = site.replace(
            f"reverse_proxy {default}", "reverse_proxy " + " ".join(f"127.0.0.1:{p}" for p in ports)
        )
    assert site.count("\nclientdesk.example.com {") == 1
    site = site.replace("\nclientdesk.example.com {", f"\nhttp://127.0.0.1:{port} {{")
    caddyfile = tmp / "Caddyfile"
    caddyfile.write_text("{\n\tadmin off\n}\n" + site)
    return [
        shutil.which("caddy") or "caddy",
        "run",
        "--adapter",
        "caddyfile",
        "--config",
        str(caddyfile),
    ]
