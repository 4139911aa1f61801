"""The README section "Your own agents and skills" runs as written, on a project laid out
as Claude Code lays one out (in a HOME of the test's own)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from conftest import subprocess_env

README = Path(__file__).resolve().parents[1] / "README.md"
BIN = Path(sys.executable).parent

PROJECT = {
    ".claude/agents/shop.md": (
        "---\nname: shop\ndescription: The shop's backend engineer.\n---\n\n"
        "You build the shop's services. Read @docs/runbook.md before answering.\n"
    ),
    ".claude/agents/db.md": (
        "---\nname: db\ndescription: The shop's database specialist.\n---\n\n"
        "You design schemas and indexes; see [indexing](../../docs/indexes.md).\n"
    ),
    ".claude/skills/sagas/SKILL.md": (
        "---\nname: sagas\ndescription: Sagas for order workflows.\n---\n\n# Sagas\n\n"
        "## Step timeouts\n\nWhen a saga step times out, retry it with the same idempotency "
        "key, then run its compensating action and mark the saga as compensating.\n"
    ),
    "docs/runbook.md": "# Runbook\n\n## Deploys\n\nDeploy the order service behind a flag.\n",
    "docs/indexes.md": (
        "# Indexes\n\n## Orders table\n\nIndex the orders table on (customer_id, created_at) "
        "for the order history query; keep the primary key narrow.\n"
    ),
}


def section_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Your own agents and skills", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_section_runs_on_a_claude_project(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for rel, text in PROJECT.items():
        path = home / "code" / "shop" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    env = subprocess_env(HOME=str(home), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    cwd, outputs = tmp_path, []
    for command in section_commands():
        words = shlex.split(command)
        if words[0] == "cd":
            cwd = Path(words[1].replace("~", str(home)))
            continue
        done = subprocess.run(
            command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        outputs.append(done.stdout)
    init, index, ask, ask_db = outputs
    assert "bekb.toml" in init and (home / "code/shop/bekb.toml").is_file()
    assert "0 added" not in index
    assert ".claude/skills/sagas/SKILL.md" in ask
    assert "compensat" in ask.lower()
    assert "docs/indexes.md" in ask_db
