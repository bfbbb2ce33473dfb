"""A real OAuth2 authorization server on 127.0.0.1, built on authlib.

It plays Microsoft's or Google's sign-in service for the OAuth tests:
authorization code with PKCE behind an HTML sign-in page, refresh tokens
that rotate on every use, the device-code grant (RFC 8628) with its approval
page, introspection (RFC 7662: Dovecot's ``oauth2`` passdb and the aiosmtpd
handler check tokens there), revocation (RFC 7009) and issuer metadata.

It runs in a thread of its own (``HTTPServer``, one request at a time), so
Dovecot, the aiosmtpd thread and the test's event loop can all call it; a
lock guards the state the test controls change. ``stop()`` and ``start()`` keep the port, so a
test can take the service down and bring it back.
"""

from __future__ import annotations

import base64
import hmac
import html
import json
import secrets
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from authlib.common.security import generate_token
from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    OAuth2Request,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc8628 import (
    DEVICE_CODE_GRANT_TYPE,
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
    DeviceCredentialDict,
)

from .ports import free_port, wait_for_port

# What Microsoft's and Google's scopes stand for here: one mail scope serves
# IMAP, POP3 and SMTP, as theirs do.
MAIL_SCOPE = "mail"
DEFAULT_SCOPE = f"{MAIL_SCOPE} offline_access"
# The resource server (Dovecot, the SMTP handler) introspects with these.
INTROSPECTION_CLIENT = ("mailserver", "introspection-secret")
_CLIENT_AUTH = ["client_secret_basic", "client_secret_post", "none"]


@dataclass
class OAuthClient(ClientMixin):  # type: ignore[misc]
    """A registered application: public (no secret) or confidential."""

    client_id: str
    client_secret: str = ""
    redirect_uris: tuple[str, ...] = ()
    scope: str = DEFAULT_SCOPE
    grant_types: tuple[str, ...] = (
        "authorization_code",
        "refresh_token",
        DEVICE_CODE_GRANT_TYPE,
    )
    name: str = "Mail Relay test app"

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = self.scope.split()
        return " ".join(part for part in scope.split() if part in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact match; a loopback URI may use any port (RFC 8252 7.3)."""
        if redirect_uri in self.redirect_uris:
            return True
        asked = urllib.parse.urlsplit(redirect_uri)
        for uri in self.redirect_uris:
            known = urllib.parse.urlsplit(uri)
            if (
                known.hostname in ("127.0.0.1", "localhost")
                and known.port is None
                and (asked.scheme, asked.hostname, asked.path)
                == (known.scheme, known.hostname, known.path)
            ):
                return True
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return bool(self.client_secret) and hmac.compare_digest(
            client_secret, self.client_secret
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.client_secret:
            return method in ("client_secret_basic", "client_secret_post")
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class IssuedToken(TokenMixin):  # type: ignore[misc]
    """One access token, with the refresh token issued along with it."""

    access_token: str
    refresh_token: str | None
    client_id: str
    user: str
    scope: str
    issued_at: float
    expires_in: int
    revoked: bool = False
    refresh_revoked: bool = False

    def check_client(self, client: OAuthClient) -> bool:
        return client.get_client_id() == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    @property
    def expires_at(self) -> float:
        return self.issued_at + self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> str:
        return self.user


@dataclass
class _Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str | None
    code_challenge_method: str | None
    issued_at: float = field(default_factory=time.time)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return time.time() > self.issued_at + 300


class _Request(OAuth2Request):  # type: ignore[misc]
    """authlib's view of one HTTP request."""

    def __init__(
        self, method: str, uri: str, headers: Any, args: dict[str, str], form: dict
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self._args = args
        self._form = form
        self.payload = BasicOAuth2Payload({**args, **form})

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


@dataclass
class _Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]]


class _AuthorizationCode(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = _CLIENT_AUTH

    def save_authorization_code(self, code: str, request: _Request) -> None:
        data = request.payload.data
        self.server.store.codes[code] = _Code(
            code,
            request.client.get_client_id(),
            data.get("redirect_uri", ""),
            request.client.get_allowed_scope(data.get("scope")),
            request.user,
            data.get("code_challenge"),
            data.get("code_challenge_method"),
        )

    def query_authorization_code(self, code: str, client: OAuthClient) -> _Code | None:
        found = self.server.store.codes.get(code)
        if (
            found
            and found.client_id == client.get_client_id()
            and not found.is_expired()
        ):
            return found
        return None

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        self.server.store.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: _Code) -> str:
        return authorization_code.user


class _RefreshToken(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = _CLIENT_AUTH
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation, as Microsoft does

    def authenticate_refresh_token(self, refresh_token: str) -> IssuedToken | None:
        store: OAuthServer = self.server.store
        store.counts["refresh"] += 1
        found = store.by_refresh.get(refresh_token)
        if found is None or found.refresh_revoked:
            return None
        return found

    def authenticate_user(self, credential: IssuedToken) -> str:
        return credential.user

    def revoke_old_credential(self, credential: IssuedToken) -> None:
        credential.refresh_revoked = True


class _DeviceCode(DeviceCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = _CLIENT_AUTH

    def query_device_credential(self, device_code: str) -> DeviceCredentialDict:
        return self.server.store.device_codes.get(device_code)

    def query_user_grant(self, user_code: str) -> tuple[str, bool] | None:
        return self.server.store.device_grants.get(user_code)

    def validate_device_credential(self, credential: DeviceCredentialDict) -> str:
        store: OAuthServer = self.server.store
        device_code = credential["device_code"]
        now = time.monotonic()
        last = store.device_polls.get(device_code)
        store.device_polls[device_code] = now
        # Faster than the interval (with some slack for timers): slow_down.
        self._too_fast = last is not None and now - last < credential["interval"] * 0.8
        user: str = super().validate_device_credential(credential)
        store.device_codes.pop(device_code, None)  # a device code is used once
        return user

    def should_slow_down(self, credential: DeviceCredentialDict) -> bool:
        return bool(getattr(self, "_too_fast", False))


class _DeviceAuthorization(DeviceAuthorizationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = _CLIENT_AUTH

    def get_verification_uri(self) -> str:
        return f"{self.server.store.base}/device"

    def create_endpoint_response(self, request: _Request) -> Any:
        store: OAuthServer = self.server.store
        self.EXPIRES_IN = store.device_code_lifetime
        self.INTERVAL = store.device_interval
        return super().create_endpoint_response(request)

    def save_device_credential(
        self, client_id: str, scope: str, data: dict[str, Any]
    ) -> None:
        store: OAuthServer = self.server.store
        credential = DeviceCredentialDict(
            client_id=client_id,
            scope=scope or DEFAULT_SCOPE,
            expires_at=time.time() + data["expires_in"],
            **data,
        )
        store.device_codes[data["device_code"]] = credential
        store.by_user_code[data["user_code"]] = credential


class _Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    def query_token(self, token: str, token_type_hint: str | None) -> Any:
        store: OAuthServer = self.server.store
        store.counts["introspection"] += 1
        if token_type_hint != "refresh_token" and token in store.by_access:
            return store.by_access[token]
        found = store.by_refresh.get(token)
        return None if found is None or found.refresh_revoked else found

    def check_permission(self, token: Any, client: OAuthClient, request: Any) -> bool:
        return client.get_client_id() == INTROSPECTION_CLIENT[0]

    def introspect_token(self, token: IssuedToken) -> dict[str, Any]:
        return {
            "active": True,
            "client_id": token.client_id,
            "token_type": "Bearer",
            "username": token.user,
            "sub": token.user,
            "scope": token.scope,
            "iat": int(token.issued_at),
            "exp": int(token.expires_at),
            "iss": self.server.store.base,
        }


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = _CLIENT_AUTH

    def query_token(self, token: str, token_type_hint: str | None) -> Any:
        store: OAuthServer = self.server.store
        return store.by_access.get(token) or store.by_refresh.get(token)

    def revoke_token(self, token: IssuedToken, request: Any) -> None:
        token.revoked = token.refresh_revoked = True


class _Authority(AuthorizationServer):  # type: ignore[misc]
    """authlib's server, glued to our store and our HTTP handler."""

    def __init__(self, store: OAuthServer) -> None:
        super().__init__(scopes_supported=DEFAULT_SCOPE.split())
        self.store = store
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: generate_token(48),
                refresh_token_generator=lambda **_: generate_token(48),
                expires_generator=lambda client, grant_type: (
                    store.access_token_lifetime
                ),
            ),
        )
        self.register_grant(_AuthorizationCode, [CodeChallenge(required=True)])
        self.register_grant(_RefreshToken)
        self.register_grant(_DeviceCode)
        self.register_endpoint(_DeviceAuthorization)
        self.register_endpoint(_Introspection)
        self.register_endpoint(_Revocation)

    def query_client(self, client_id: str) -> OAuthClient | None:
        return self.store.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: _Request) -> None:
        self.store.save(token, request.client.get_client_id(), request.user)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No listeners: the counters are kept elsewhere."""

    def create_oauth2_request(self, request: Any) -> _Request:
        assert isinstance(request, _Request)
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> _Response:
        data = json.dumps(body).encode() if isinstance(body, dict) else b""
        return _Response(status, data, list(headers))


class OAuthServer:
    """The test authorization server and its controls.

    ``users`` maps an address to its password (the sign-in pages check it);
    ``register_client`` adds an application; ``issue(user)`` mints a token
    pair without any flow, for mail tests. ``counts`` counts the requests:
    ``token`` (every /token call), ``refresh``, ``device_poll``,
    ``introspection``, ``authorize``, ``revoke``.
    """

    def __init__(self, port: int | None = None) -> None:
        """Prepare; ``start()`` listens on 127.0.0.1 (an ephemeral port)."""
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.users: dict[str, str] = {}
        self.clients: dict[str, OAuthClient] = {}
        self.access_token_lifetime = 3600
        self.device_interval = 1
        self.device_code_lifetime = 600
        self.counts: Counter[str] = Counter()
        self.codes: dict[str, _Code] = {}
        self.by_access: dict[str, IssuedToken] = {}
        self.by_refresh: dict[str, IssuedToken] = {}
        self.device_codes: dict[str, DeviceCredentialDict] = {}
        self.by_user_code: dict[str, DeviceCredentialDict] = {}
        self.device_grants: dict[str, tuple[str, bool]] = {}
        self.device_polls: dict[str, float] = {}
        # Answer /authorize at once as this user (tests without a browser).
        self.auto_user: str | None = None
        # Answer /token with this status (500, 503: the service is failing).
        self.token_failure: int | None = None
        self.lock = threading.RLock()
        # Exceptions raised while answering (a bug in this server); tests check.
        self.errors: list[Exception] = []
        self._authority = _Authority(self)
        self._http: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.register_client(*INTROSPECTION_CLIENT, grant_types=())
        self.default_client = self.register_client(
            "mail-relay-test",
            redirect_uris=("http://127.0.0.1/callback",),
        )

    # -- addresses -----------------------------------------------------

    @property
    def base(self) -> str:
        """The issuer URL, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def introspection_url(self) -> str:
        """Where a resource server checks a token."""
        return f"{self.base}/introspect"

    def endpoints(self) -> dict[str, str]:
        """The issuer metadata (RFC 8414 / OpenID discovery)."""
        base = self.base
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "device_authorization_endpoint": f"{base}/devicecode",
            "introspection_endpoint": f"{base}/introspect",
            "revocation_endpoint": f"{base}/revoke",
            "userinfo_endpoint": f"{base}/userinfo",
            "response_types_supported": ["code"],
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                DEVICE_CODE_GRANT_TYPE,
            ],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": DEFAULT_SCOPE.split(),
            "token_endpoint_auth_methods_supported": _CLIENT_AUTH,
        }

    # -- test controls -------------------------------------------------

    def register_client(
        self,
        client_id: str,
        client_secret: str = "",
        *,
        redirect_uris: tuple[str, ...] = (),
        scope: str = DEFAULT_SCOPE,
        grant_types: tuple[str, ...] | None = None,
    ) -> OAuthClient:
        """Register an application (public without a secret)."""
        client = OAuthClient(client_id, client_secret, tuple(redirect_uris), scope)
        if grant_types is not None:
            client.grant_types = grant_types
        with self.lock:
            self.clients[client_id] = client
        return client

    def add_user(self, address: str, password: str | None = None) -> str:
        """Let ``address`` sign in with ``password``; return the password."""
        password = password or secrets.token_urlsafe(12)
        with self.lock:
            self.users[address] = password
        return password

    def save(self, token: dict[str, Any], client_id: str, user: str) -> IssuedToken:
        """Record a token pair the server just issued."""
        issued = IssuedToken(
            token["access_token"],
            token.get("refresh_token"),
            client_id,
            user,
            token.get("scope", ""),
            time.time(),
            int(token.get("expires_in", self.access_token_lifetime)),
        )
        with self.lock:
            self.by_access[issued.access_token] = issued
            if issued.refresh_token:
                self.by_refresh[issued.refresh_token] = issued
        return issued

    def issue(
        self,
        user: str,
        *,
        scope: str = DEFAULT_SCOPE,
        client_id: str | None = None,
        lifetime: int | None = None,
    ) -> IssuedToken:
        """Mint a token pair for ``user`` without any flow (mail tests)."""
        return self.save(
            {
                "access_token": generate_token(48),
                "refresh_token": generate_token(48),
                "scope": scope,
                "expires_in": self.access_token_lifetime
                if lifetime is None
                else lifetime,
            },
            client_id or self.default_client.client_id,
            user,
        )

    def expire(self, token: str) -> None:
        """Make an access token expired from now on (its refresh token stays)."""
        with self.lock:
            found = self.by_access[token]
            found.expires_in = int(time.time() - found.issued_at) - 1

    def revoke_all(self, user: str) -> None:
        """Revoke every access and refresh token of ``user``."""
        with self.lock:
            for token in self.by_access.values():
                if token.user == user:
                    token.revoked = token.refresh_revoked = True

    def approve_device(
        self, user_code: str, user: str, *, approve: bool = True
    ) -> None:
        """Do what the user does on the /device page (or deny with approve=False)."""
        with self.lock:
            if user_code not in self.by_user_code:
                raise KeyError(user_code)
            self.device_grants[user_code] = (user, approve)

    def authorize_as(self, user: str | None) -> None:
        """Answer /authorize at once as ``user`` (None: show the sign-in page)."""
        self.auto_user = user

    @property
    def token_requests(self) -> int:
        """How many /token requests came (every grant)."""
        return self.counts["token"]

    @property
    def refresh_requests(self) -> int:
        """How many refresh-token grants came."""
        return self.counts["refresh"]

    @property
    def introspection_requests(self) -> int:
        """How many introspections came (Dovecot's, the SMTP handler's)."""
        return self.counts["introspection"]

    def tokens_of(self, user: str) -> list[IssuedToken]:
        """Every token issued to ``user``, oldest first."""
        with self.lock:
            return [t for t in self.by_access.values() if t.user == user]

    # -- lifecycle -----------------------------------------------------

    def start(self) -> None:
        """Listen on the port (the same one after ``stop()``)."""
        server = HTTPServer((self.host, self.port), _handler_for(self))
        self._http = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="oauth-server", daemon=True
        )
        self._thread.start()
        wait_for_port(self.port)

    def stop(self) -> None:
        """Stop listening (the service is down); tokens and users are kept."""
        if self._http is None:
            return
        self._http.shutdown()
        self._http.server_close()
        assert self._thread is not None
        self._thread.join(5)
        self._http = self._thread = None

    @property
    def running(self) -> bool:
        """Whether the server listens."""
        return self._http is not None

    @contextmanager
    def down(self) -> Iterator[None]:
        """The service is unreachable inside the block."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    # -- requests (called by the HTTP handler, under the lock) ---------

    def handle(self, request: _Request, path: str) -> _Response:
        """Route one request."""
        authority = self._authority
        if path in (
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
        ):
            return _json(200, self.endpoints())
        if path == "/token":
            self.counts["token"] += 1
            if request.form.get("grant_type") == DEVICE_CODE_GRANT_TYPE:
                self.counts["device_poll"] += 1
            if self.token_failure is not None:
                return _json(self.token_failure, {"error": "temporarily_unavailable"})
            result: _Response = authority.create_token_response(request)
            return result
        if path == "/devicecode":
            return self._endpoint("device_authorization", request)
        if path == "/introspect":
            return self._endpoint("introspection", request)
        if path == "/revoke":
            self.counts["revoke"] += 1
            return self._endpoint("revocation", request)
        if path == "/authorize":
            self.counts["authorize"] += 1
            return self._authorize(request)
        if path == "/device":
            return self._device(request)
        if path == "/userinfo":
            return self._userinfo(request)
        return _Response(404, b"not found", [("Content-Type", "text/plain")])

    def _endpoint(self, name: str, request: _Request) -> _Response:
        result: _Response = self._authority.create_endpoint_response(name, request)
        return result

    def _userinfo(self, request: _Request) -> _Response:
        bearer = request.headers.get("Authorization", "")
        found = self.by_access.get(bearer.removeprefix("Bearer ").strip())
        if found is None or found.is_expired() or found.revoked:
            return _json(401, {"error": "invalid_token"})
        return _json(200, {"sub": found.user, "email": found.user, "name": found.user})

    def _authorize(self, request: _Request) -> _Response:
        authority = self._authority
        try:
            grant = authority.get_consent_grant(request)
        except OAuth2Error as error:
            return _page(
                400,
                "Sign-in error",
                f"<p>{html.escape(error.error)}: "
                f"{html.escape(error.description or '')}</p>",
            )
        user = self.auto_user
        error = ""
        if request.method == "POST":
            if request.form.get("action") == "deny":
                return authority.create_authorization_response(  # type: ignore[no-any-return]
                    request, grant_user=None, grant=grant
                )
            address = request.form.get("username", "")
            if self.users.get(address) == request.form.get("password") and address:
                user = address
            else:
                error = "Wrong address or password."
        if user is not None:
            return authority.create_authorization_response(  # type: ignore[no-any-return]
                request, grant_user=user, grant=grant
            )
        return self._sign_in_page(request, grant.client, error)

    def _sign_in_page(
        self, request: _Request, client: OAuthClient, error: str
    ) -> _Response:
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in request.args.items()
        )
        choices = "".join(
            f'<option value="{html.escape(address)}">' for address in self.users
        )
        body = f"""
<p>{html.escape(client.name)} asks to read and send your mail
(scope: {html.escape(request.args.get("scope", ""))}).</p>
{f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""}
<form method="post" action="/authorize?{html.escape(urllib.parse.urlencode(request.args))}">
{hidden}
<label>Email address <input name="username" list="accounts" autocomplete="username"></label>
<datalist id="accounts">{choices}</datalist>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit" name="action" value="allow">Sign in and allow</button>
<button type="submit" name="action" value="deny">Cancel</button>
</form>"""
        return _page(200, "Sign in", body)

    def _device(self, request: _Request) -> _Response:
        code = request.form.get("user_code") or request.args.get("user_code") or ""
        code = code.strip().upper()
        message = ""
        if request.method == "POST":
            address = request.form.get("username", "")
            if code not in self.by_user_code:
                message = "This code is unknown or has expired."
            elif request.form.get("action") == "deny":
                self.device_grants[code] = (address, False)
                return _page(
                    200, "Denied", "<p>Access denied. You may close this window.</p>"
                )
            elif address and self.users.get(address) == request.form.get("password"):
                self.device_grants[code] = (address, True)
                return _page(
                    200, "Done", "<p>You are signed in. You may close this window.</p>"
                )
            else:
                message = "Wrong address or password."
        body = f"""
{f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""}
<form method="post" action="/device">
<label>Code <input name="user_code" value="{html.escape(code)}"></label>
<label>Email address <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password"></label>
<button type="submit" name="action" value="allow">Allow</button>
<button type="submit" name="action" value="deny">Deny</button>
</form>"""
        return _page(200, "Enter the code", body)


def _json(status: int, body: dict[str, Any]) -> _Response:
    return _Response(
        status, json.dumps(body).encode(), [("Content-Type", "application/json")]
    )


def _page(status: int, title: str, body: str) -> _Response:
    text = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"</head><body><h1>{title}</h1>{body}</body></html>"
    )
    return _Response(
        status, text.encode(), [("Content-Type", "text/html; charset=utf-8")]
    )


def _handler_for(server: OAuthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # One request per connection, answered in the server's thread: no
        # thread per request outlives a test (Home Assistant's plugin checks).
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read the counters instead."""

        def _serve(self) -> None:
            split = urllib.parse.urlsplit(self.path)
            args = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            form: dict[str, str] = {}
            if "json" in (self.headers.get("Content-Type") or ""):
                form = json.loads(raw or b"{}")
            elif raw:
                form = dict(
                    urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True)
                )
            # Dovecot posts empty client_id/client_secret besides its Basic header.
            form = {k: v for k, v in form.items() if v != "" or k == "token"}
            request = _Request(
                self.command, f"{server.base}{self.path}", self.headers, args, form
            )
            with server.lock:
                try:
                    response = server.handle(request, split.path)
                except Exception as err:  # a bug here: answer 500 and keep it
                    server.errors.append(err)
                    response = _json(500, {"error": "server_error"})
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(response.body)

        do_GET = do_POST = _serve

    return Handler


def basic_auth(client_id: str, secret: str) -> str:
    """The Authorization header value of HTTP Basic client authentication."""
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


__all__ = [
    "DEFAULT_SCOPE",
    "INTROSPECTION_CLIENT",
    "MAIL_SCOPE",
    "IssuedToken",
    "OAuthClient",
    "OAuthServer",
    "basic_auth",
]
