#!/usr/bin/env bash
# The collection's docs site, built with antsibull-docs from the collection itself:
#   scripts/docs.sh [build]   generate the guides, lint, and build the HTML site into
#                             .cache/docsite/build/html (Sphinx in a venv of its own,
#                             .cache/docsite/venv, installed from PyPI on first use)
#   scripts/docs.sh lint      fast checks only (what scripts/test.sh lint runs):
#                             the generated guides are up to date, every relative link
#                             and picture resolves, `antsibull-docs lint-collection-docs
#                             --plugin-docs` passes
#   scripts/docs.sh gen       write docs/docsite/rst/NAME.rst from docs/NAME.md
#   scripts/docs.sh pictures  draw docs/docsite/rst/images/*.svg from the recorded
#                             net_info results in tests/unit/fixtures/netinfo/
#                             (scripts/netpic.py, then Graphviz's dot)
#   scripts/docs.sh record    record those net_info results again (as root): the lab's
#                             (scripts/run.sh inside the network sandbox) and the
#                             router and macvlan examples (scripts/netpic-examples.yml)
#
# The guides' source is docs/*.md; docs/docsite/rst/*.rst is generated from
# it (scripts/docsite.py, pandoc from the pypandoc-binary wheel) and committed,
# so the built collection carries them. The pictures are never drawn by hand.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$REPO/.venv
DOCS_VENV=$REPO/.cache/docsite/venv
SITE=$REPO/.cache/docsite
FIXTURES=$REPO/tests/unit/fixtures/netinfo
IMAGES=$REPO/docs/docsite/rst/images
cd "$REPO"

die() { printf 'docs.sh: %s\n' "$*" >&2; exit 1; }
[[ -x $VENV/bin/antsibull-docs ]] || die "$VENV/bin/antsibull-docs missing: run scripts/setup.sh"

COLLECTIONS=$REPO/.cache/collections
mkdir -p "$COLLECTIONS/ansible_collections/hostnet"
[[ $(readlink "$COLLECTIONS/ansible_collections/hostnet/provision") == "$REPO" ]] \
    || ln -sfn "$REPO" "$COLLECTIONS/ansible_collections/hostnet/provision"
export ANSIBLE_COLLECTIONS_PATH=$COLLECTIONS
export PATH=$VENV/bin:$PATH ANSIBLE_NOCOLOR=1

docs_lint() {
    "$VENV/bin/python" scripts/docsite.py --check
    "$VENV/bin/python" scripts/docsite.py --links
    "$VENV/bin/antsibull-docs" lint-collection-docs --plugin-docs .
    echo "docs.sh: lint ok"
}

docs_pictures() {
    command -v dot >/dev/null || die "Graphviz's dot missing (apt-get install graphviz; scripts/setup.sh installs it)"
    mkdir -p "$IMAGES"
    draw() {
        local name=$1 title=$2
        shift 2
        "$VENV/bin/python" scripts/netpic.py --title "$title" "$@" | dot -Tsvg -o "$IMAGES/$name.svg"
        echo "docs.sh: wrote docs/docsite/rst/images/$name.svg"
    }
    draw bridge-network "Bridge networks on lab1 (net_info after playbooks/site.yml)" \
        --only br-web br-backend -- "$FIXTURES/lab1.json"
    draw tenants "Tenants on lab2 (net_info after playbooks/site.yml)" \
        --only tn-acme tn-globex -- "$FIXTURES/lab2.json"
    draw overlay "Overlay ov1 across lab1..lab3 (net_info after playbooks/site.yml)" \
        --only ov-ov1 eth0 -- "$FIXTURES/lab1.json" "$FIXTURES/lab2.json" "$FIXTURES/lab3.json"
    draw router "Router namespace (net_info of scripts/netpic-examples.yml)" \
        -- "this host=$FIXTURES/router.json"
    draw macvlan "macvlan endpoints (net_info of scripts/netpic-examples.yml)" \
        -- "this host=$FIXTURES/macvlan.json"
}

docs_record() {
    [[ $(id -u) -eq 0 ]] || die "record: run as root (it runs the lab inside the network sandbox)"
    local tmp
    tmp=$(mktemp -d /tmp/hostnet-docs-XXXXXX)
    # shellcheck disable=SC2016  # expanded by the inner shell
    bash scripts/sandbox.sh env HOSTNET_LAB_DIR="$tmp/lab" bash -c \
        'rc=0; bash scripts/run.sh || rc=$?; bash scripts/lab.sh down; exit $rc'
    cp "$tmp"/lab/pictures/lab[123].json "$FIXTURES/"
    bash scripts/sandbox.sh "$VENV/bin/ansible-playbook" -i localhost, \
        -e "ansible_python_interpreter=$VENV/bin/python" -e "netinfo_dir=$tmp" scripts/netpic-examples.yml
    cp "$tmp/router.json" "$tmp/macvlan.json" "$FIXTURES/"
    rm -rf "$tmp"
    echo "docs.sh: recorded $FIXTURES; now run scripts/docs.sh pictures"
}

docs_build() {
    "$VENV/bin/python" scripts/docsite.py
    docs_lint
    if [[ ! -x $DOCS_VENV/bin/sphinx-build ]]; then
        python3 -m venv "$DOCS_VENV"
    fi
    rm -rf "$SITE/src"
    mkdir -p "$SITE/src"
    "$VENV/bin/antsibull-docs" sphinx-init --use-current --squash-hierarchy --fail-on-error \
        --title "hostnet.provision" --dest-dir "$SITE/src" hostnet.provision
    "$DOCS_VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$SITE/src/requirements.txt" \
        'ansible-core>=2.19,<2.20'
    # build.sh of sphinx-init: antsibull-docs collection ... then sphinx-build;
    # the pictures are not RST, so antsibull-docs does not copy them: done here.
    (
        cd "$SITE/src"
        export PATH=$DOCS_VENV/bin:$PATH
        antsibull-docs collection --use-current --squash-hierarchy --fail-on-error \
            --dest-dir rst hostnet.provision
        mkdir -p rst/docsite/images
        cp "$IMAGES"/*.svg rst/docsite/images/
        # No -W: the references into ansible-core's and Python's docs need
        # their intersphinx inventories, which an offline build cannot fetch.
        sphinx-build -M html rst "$SITE/build" -c . -q
    )
    # The site has a page per module, role and guide, and every picture.
    local html=$SITE/build/html name
    for name in plugins/modules/*.py; do
        name=${name##*/}
        [[ -f $html/${name%.py}_module.html ]] || die "the site has no page for module ${name%.py}"
    done
    for name in roles/*/; do
        name=${name%/}
        [[ -f $html/${name##*/}_role.html ]] || die "the site has no page for role ${name##*/}"
    done
    while read -r name; do
        [[ -f $html/docsite/$name.html ]] || die "the site has no page for guide $name"
    done < <(sed -n 's/^      - \([a-z0-9-]*\)$/\1/p' docs/docsite/extra-docs.yml)
    for name in "$IMAGES"/*.svg; do
        [[ -f $html/_images/${name##*/} ]] || die "the site lacks the picture ${name##*/}"
    done
    echo "docs.sh: site in $html/index.html"
}

case ${1:-build} in
    build) docs_build ;;
    lint) docs_lint ;;
    gen) "$VENV/bin/python" scripts/docsite.py ;;
    pictures) docs_pictures ;;
    record) docs_record ;;
    *) die "unknown command '$1' (build|lint|gen|pictures|record)" ;;
esac
