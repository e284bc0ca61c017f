"""Personal data encrypted per data subject (crypto-shredding).

Each person gets a random AES-256-GCM key; their names, phones, ID numbers and addresses
are sealed with it before they are stored or published. Erasure deletes the key, after
which every copy (event rows, Kafka messages, backups) is unreadable, while ids, counts
and every other field still work. The field name and subject id are bound in as
associated data, so a sealed value cannot be moved to another person or field.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Protocol

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ERASED = "[erased]"
_NONCE = 12


def _aad(subject_id: str, field: str) -> bytes:
    return f"{subject_id}\0{field}".encode()


def seal(key: bytes, subject_id: str, field: str, plaintext: str) -> bytes:
    return Sealer(key, subject_id)(field, plaintext)


class Sealer:
    """Seals fields of one subject with one cipher: building the cipher costs as much as a
    seal, and a bulk import seals several fields of thousands of people."""

    def __init__(self, key: bytes, subject_id: str):
        self._aead, self.subject_id = AESGCM(key), subject_id

    def __call__(self, field: str, plaintext: str) -> bytes:
        return _sealed(self._aead, self.subject_id, field, plaintext.encode())


def _sealed(aead: AESGCM, subject_id: str, field: str, data: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + aead.encrypt(nonce, data, _aad(subject_id, field))


def unseal(key: bytes, subject_id: str, field: str, sealed: bytes) -> str:
    try:
        return AESGCM(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], _aad(subject_id, field)).decode()
    except InvalidTag:
        raise ValueError(f"sealed {field} of {subject_id} does not open with its key") from None


@dataclass(frozen=True)
class MasterKey:
    """Wraps subject keys at rest; from GANSHOU_PII_MASTER_KEY (32 bytes, base64)."""

    key: bytes

    @classmethod
    def from_base64(cls, text: str) -> "MasterKey":
        raw = base64.b64decode(text)
        if len(raw) != 32:
            raise ValueError("the personal-data master key must be 32 bytes (base64)")
        return cls(raw)

    @functools.cached_property
    def _aead(self) -> AESGCM:
        return AESGCM(self.key)

    def wrap(self, subject_id: str, key: bytes) -> bytes:
        return _sealed(self._aead, subject_id, "subject-key", base64.b64encode(key))

    def unwrap(self, subject_id: str, wrapped: bytes) -> bytes:
        return base64.b64decode(unseal(self.key, subject_id, "subject-key", wrapped))


class KeyRing(Protocol):
    async def key_for(self, subject_id: str, create: bool = False) -> bytes | None:
        """The subject's key; a new one when `create` and none exists; None once erased."""
        ...

    async def erase(self, subject_id: str, erased_by: str) -> bool:
        """Delete the key for good; False if it was already erased."""
        ...


class MemoryKeyRing:
    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}
        self.erased: set[str] = set()

    async def key_for(self, subject_id: str, create: bool = False) -> bytes | None:
        if subject_id in self.erased:
            return None
        if create and subject_id not in self.keys:
            self.keys[subject_id] = AESGCM.generate_key(256)
        return self.keys.get(subject_id)

    async def erase(self, subject_id: str, erased_by: str) -> bool:
        if subject_id in self.erased:
            return False
        self.keys.pop(subject_id, None)
        self.erased.add(subject_id)
        return True


class PostgresKeyRing:
    """Keys in the service's database; pass the command's connection so a new key commits
    (or not) with the events that use it."""

    def __init__(self, conn: asyncpg.Connection | asyncpg.Pool, master: MasterKey):
        self.conn, self.master = conn, master

    async def key_for(self, subject_id: str, create: bool = False) -> bytes | None:
        wrapped = await self.conn.fetchval("SELECT wrapped_key FROM subject_keys WHERE subject_id = $1", subject_id)
        if wrapped is not None:
            return self.master.unwrap(subject_id, bytes(wrapped))
        if not create:
            return None
        if await self.conn.fetchval("SELECT 1 FROM erased_subjects WHERE subject_id = $1", subject_id):
            return None
        key = AESGCM.generate_key(256)
        await self.conn.execute(
            "INSERT INTO subject_keys (subject_id, wrapped_key) VALUES ($1, $2)", subject_id,
            self.master.wrap(subject_id, key),
        )
        return key

    async def create_many(self, subject_ids: list[str]) -> dict[str, bytes]:
        """Keys for subjects that are new (fresh ids), in one statement: a bulk import's
        thousands of people cost one round trip, not three each."""
        keys = {s: AESGCM.generate_key(256) for s in subject_ids}
        await self.conn.execute(
            "INSERT INTO subject_keys (subject_id, wrapped_key) SELECT * FROM unnest($1::text[], $2::bytea[])",
            list(keys), [self.master.wrap(s, k) for s, k in keys.items()])
        return keys

    async def erase(self, subject_id: str, erased_by: str) -> bool:
        await self.conn.execute("DELETE FROM subject_keys WHERE subject_id = $1", subject_id)
        status = await self.conn.execute(
            "INSERT INTO erased_subjects (subject_id, erased_by) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            subject_id, erased_by,
        )
        return not status.endswith(" 0")


async def lookup_key(conn: asyncpg.Connection | asyncpg.Pool, master: MasterKey, name: str) -> bytes:
    """The service's key for keyed digests of `name` values (ID numbers: to find one
    registered twice without storing it). A subject key no person owns, made once, so
    rotating the master key re-wraps it with the others; call it outside a transaction
    that may roll back (at start), since the key is kept for the process's life."""
    subject = f"lookup-{name}"
    await conn.execute("INSERT INTO subject_keys (subject_id, wrapped_key) VALUES ($1, $2) "
                       "ON CONFLICT (subject_id) DO NOTHING", subject, master.wrap(subject, AESGCM.generate_key(256)))
    key = await PostgresKeyRing(conn, master).key_for(subject)
    assert key is not None  # never erased: no person's
    return key


def keyed_digest(key: bytes, value: str) -> bytes:
    """HMAC-SHA256: equal values match; without the key the digest tells nothing."""
    return hmac.new(key, value.encode(), hashlib.sha256).digest()


async def record_access(
    conn: asyncpg.Connection | asyncpg.Pool, *, actor: str, actor_role: str, subject_id: str,
    fields: list[str], purpose: str, correlation_id: str = "",
) -> None:
    """The audit trail: every read of personal fields, with its stated purpose."""
    await conn.execute(
        "INSERT INTO personal_data_access (actor, actor_role, subject_id, fields, purpose, correlation_id) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        actor, actor_role, subject_id, fields, purpose, correlation_id,
    )
