"""Token settings from the environment, and a command that mints local tokens.

    python -m ganshou_common.grpc_scaffold.tokens --role community_cadre --community c-01
Environment: GANSHOU_TOKEN_SECRET (local, HS256) or GANSHOU_JWKS_FILE (production).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ganshou_common.config import ConfigError
from ganshou_common.grpc_scaffold.auth import Role, TokenVerifier, mint_token


def verifier_from_env() -> TokenVerifier:
    secret = os.environ.get("GANSHOU_TOKEN_SECRET")
    jwks = os.environ.get("GANSHOU_JWKS_FILE")
    if not secret and not jwks:
        raise ConfigError("environment variable GANSHOU_TOKEN_SECRET or GANSHOU_JWKS_FILE is required but not set")
    return TokenVerifier(secret=secret or None, jwks_path=Path(jwks) if jwks else None)


def main() -> None:
    parser = argparse.ArgumentParser(description="Mint a local bearer token (HS256) for one role.")
    parser.add_argument("--role", required=True, choices=[r.value for r in Role])
    parser.add_argument("--subject", default="local-user")
    parser.add_argument("--community", action="append", default=[], help="repeat for several")
    parser.add_argument("--partner", default="")
    parser.add_argument("--ttl", type=int, default=12 * 3600, help="seconds")
    args = parser.parse_args()
    secret = os.environ.get("GANSHOU_TOKEN_SECRET")
    if not secret:
        raise SystemExit("GANSHOU_TOKEN_SECRET is not set")
    print(mint_token(secret, args.subject, args.role, args.community, args.partner, args.ttl))


if __name__ == "__main__":
    main()
