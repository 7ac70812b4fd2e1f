"""Account management from the console: a supervisor lists, adds, disables / enables, re-roles
accounts and sets a new password; every attempt is audited, refusals too.

The accounts store is users.Users (the same file `roadedge dispatch --add-user` writes); sessions
follow each change at once (users.Sessions.current). Passwords never reach the audit trail.
"""
from __future__ import annotations

from .console import PERMS, Console, Refused
from .users import AccountConflict, Sessions, UnknownAccount, Users


class AccountAdmin:
    def __init__(self, console: Console, users: Users, sessions: Sessions) -> None:
        self.console, self.users, self.sessions = console, users, sessions

    def _allowed(self, sess: dict, action: str, target: str, detail: dict) -> None:
        if sess["role"] not in PERMS["accounts"]:
            self.console.audit(sess, action, target, detail, f"refused: role {sess['role']} may not manage accounts")
            raise Refused(403, f"a {sess['role']} may not manage accounts")

    def _do(self, sess: dict, op: str, name, detail: dict, change) -> dict:
        """Permission, then the change; the outcome (or why not) goes to the audit trail as
        account_<op> (account_add, account_role, account_disable, ...)."""
        target, action = str(name)[:64], f"account_{op}"
        self._allowed(sess, action, target, detail)
        try:
            if not isinstance(name, str):
                raise ValueError("name required")
            change()
        except UnknownAccount as e:
            self.console.audit(sess, action, target, detail, "refused: no such account")
            raise Refused(404, str(e)) from None
        except AccountConflict as e:
            self.console.audit(sess, action, target, detail, f"refused: {e}")
            raise Refused(409, str(e)) from None
        except ValueError as e:
            self.console.audit(sess, action, target, detail, f"refused: {e}")
            raise Refused(400, str(e)) from None
        except OSError as e:  # a full disk, a read-only accounts folder: nothing changed
            self.console.audit(sess, action, target, detail, f"failed: {e.strerror or e}")
            raise Refused(503, f"the accounts file could not be written: {e.strerror or e}") from None
        self.console.audit(sess, action, target, detail, "ok")
        self.console.bus.publish("accounts", {"changed": target})
        return {"ok": True, "accounts": self.users.list()}

    def list(self, sess: dict) -> list[dict]:
        self._allowed(sess, "account_list", "accounts", {})
        return self.users.list()

    def add(self, sess: dict, name, role, password) -> dict:
        return self._do(sess, "add", name, {"role": role},
                        lambda: self.users.add(name, str(role), str(password or ""), sess["user"], replace=False))

    def set_role(self, sess: dict, name, role) -> dict:
        def change() -> None:
            if name == sess["user"]:
                raise AccountConflict("you cannot change your own role: ask another supervisor")
            self.users.set_role(name, str(role), sess["user"])

        return self._do(sess, "role", name, {"role": role}, change)

    def set_enabled(self, sess: dict, name, enabled) -> dict:
        def change() -> None:
            if not isinstance(enabled, bool):
                raise ValueError("enabled must be true or false")
            if name == sess["user"] and not enabled:
                raise AccountConflict("you cannot disable your own account: ask another supervisor")
            self.users.set_disabled(name, not enabled, sess["user"])

        return self._do(sess, "enable" if enabled is True else "disable", name, {}, change)

    def set_password(self, sess: dict, name, password) -> dict:
        def change() -> None:
            self.users.set_password(name, str(password or ""), sess["user"])
            if name == sess["user"]:  # the supervisor's own session carries on; their others end
                self.sessions.keep(sess, self.users)

        return self._do(sess, "password", name, {}, change)
