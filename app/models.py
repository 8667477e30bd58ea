"""Import every feature's models so that the metadata is complete (Alembic, tests)."""

from __future__ import annotations


def load_all_models() -> None:
    from app.achievements import models as _achievements  # noqa: F401
    from app.audit import models as _audit  # noqa: F401
    from app.credentials import models as _credentials  # noqa: F401
    from app.issuers import models as _issuers  # noqa: F401
    from app.jobs import models as _jobs  # noqa: F401
    from app.portfolios import models as _portfolios  # noqa: F401
    from app.status import models as _status  # noqa: F401
    from app.trust import models as _trust  # noqa: F401
    from app.webhooks import models as _webhooks  # noqa: F401
