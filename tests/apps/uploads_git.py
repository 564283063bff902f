"""A git smart-HTTP server: dulwich's WSGI application serving one bare
repository (the path in RWSGI_TEST_GIT_REPO) at /. `git push` sends packs
larger than http.postBuffer with Transfer-Encoding: chunked.

    pip install dulwich
    RWSGI_TEST_GIT_REPO=/path/to/repo.git rwsgi start-server tests/apps/uploads_git.py
"""

import os

from dulwich.repo import Repo
from dulwich.server import DictBackend
from dulwich.web import make_wsgi_chain

application = make_wsgi_chain(DictBackend({"/": Repo(os.environ["RWSGI_TEST_GIT_REPO"])}))
