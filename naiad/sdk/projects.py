"""client.projects: projects and who holds which role in each (admins manage them).

client.projects.create("vision")
client.projects.set_member("vision", "ana", "editor")
naiad.Client(project="vision").experiments.create("resnets")   # made in vision
"""

from __future__ import annotations

import builtins

from naiad.schemas.projects import Member, Project
from naiad.sdk.http import Transport


class Projects:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self) -> list[Project]:
        """The projects you hold a role in (an admin: all), with your role."""
        return [Project.model_validate(p) for p in self._t.request("GET", "/projects")]

    def create(self, name: str, description: str = "") -> Project:
        body = {"name": name, "description": description}
        return Project.model_validate(self._t.request("POST", "/projects", json=body))

    def delete(self, name: str) -> None:
        """Delete an empty project."""
        self._t.request("DELETE", f"/projects/{name}")

    def members(self, name: str) -> builtins.list[Member]:
        return [
            Member.model_validate(m) for m in self._t.request("GET", f"/projects/{name}/members")
        ]

    def set_member(self, name: str, user: str, role: str) -> Member:
        """Give ``user`` ``role`` in the project (or change it)."""
        answer = self._t.request("PUT", f"/projects/{name}/members/{user}", json={"role": role})
        return Member.model_validate(answer)

    def remove_member(self, name: str, user: str) -> None:
        self._t.request("DELETE", f"/projects/{name}/members/{user}")
