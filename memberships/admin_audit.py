"""Admin pages that show members write one audit row per member shown (issue 19: every view of
member data is audited), in one INSERT."""

from __future__ import annotations

from .views.common import audit_view


class AuditedMemberPages:
    """An admin page that shows members (a change form, a list) writes one audit row per member
    shown, in one INSERT: `member_of(obj)` is the member id a row shows."""

    def member_of(self, obj) -> int | None:
        return getattr(obj, "member_id", None)      # a row with a `member`; else say which

    def _audit(self, request, response, *, action: str, objects) -> None:
        if getattr(response, "status_code", None) == 200 and objects:
            audit_view(request, action=f"{action}_{self.model._meta.model_name}",
                       members=[m for m in (self.member_of(obj) for obj in objects) if m is not None])

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        if changelist is not None:
            self._audit(request, response, action="admin_list", objects=list(changelist.result_list))
        return response

    def history_view(self, request, object_id, extra_context=None):
        response = super().history_view(request, object_id, extra_context)
        shown = (getattr(response, "context_data", None) or {}).get("object")     # "Change history: <it>"
        if shown is not None:
            self._audit(request, response, action="admin_history", objects=[shown])
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        original = (getattr(response, "context_data", None) or {}).get("original")
        if original is not None:
            self._audit(request, response, action="admin_view", objects=[original])
        return response
