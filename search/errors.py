"""The one kind of error a user is shown: ``UserError``.

Bad input a user can fix (a flag, a grid file, a device, a URL, a storage, the data, a study
resumed with other settings) raises a ``UserError`` subclass whose message is one line naming
the flag or file and what is wrong, secrets removed (``search.urls.first_line`` makes such a
line of whatever a library raised). ``search.run.main`` prints it as ``error: MESSAGE`` and
exits with status 2; nothing has been written before it is raised. The data package, which
knows nothing of ``search``, has its own ``data.DataError``, shown the same way.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: one line for the user, exit status 2, nothing written."""
