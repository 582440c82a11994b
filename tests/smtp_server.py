"""A real SMTP server for the alert-mail tests (aiosmtpd), on 127.0.0.1 only.

Usage: smtp_server.py PORT CERT_PEM KEY_PEM USER PASSWORD [implicit]

Offers STARTTLS with the given certificate and refuses mail before it; requires AUTH (over
TLS only) with USER/PASSWORD. With "implicit" it speaks TLS from the first byte instead
(smtps, port 465 style) and offers no STARTTLS. Prints one JSON line "ready" once listening, then one JSON line
per mail received: envelope sender and recipients, whether TLS and AUTH were used, and the
decoded From, To, Subject and text body. Stops when its stdin closes.
"""

import email
import email.policy
import json
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, cert, key, user, password = sys.argv[1:6]
implicit = sys.argv[6:7] == ["implicit"]


class Record:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        print(
            json.dumps(
                {
                    "mail_from": envelope.mail_from,
                    "rcpt_to": envelope.rcpt_tos,
                    # STARTTLS sets session.ssl; implicit TLS only shows on the transport.
                    "tls": server.transport.get_extra_info("ssl_object") is not None,
                    "starttls": session.ssl is not None,
                    "authenticated": bool(session.authenticated),
                    "from": str(message["From"]),
                    "to": str(message["To"]),
                    "subject": str(message["Subject"]),
                    "body": body.get_content() if body is not None else "",
                }
            ),
            flush=True,
        )
        return "250 OK"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    )
    return AuthResult(success=ok)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
if implicit:
    # The whole connection is TLS, which aiosmtpd's STARTTLS-based AUTH check cannot see.
    tls = dict(ssl_context=context, auth_require_tls=False)
else:
    tls = dict(tls_context=context, require_starttls=True, auth_require_tls=True)
controller = Controller(
    Record(),
    hostname="127.0.0.1",
    port=int(port),
    authenticator=authenticate,
    auth_required=True,
    **tls,
)
controller.start()
print(json.dumps({"ready": True}), flush=True)
sys.stdin.read()
controller.stop()
