# shellcheck shell=bash
# Shared by the stand-in commands in this folder (tests only; never on a real cluster's PATH).
# record NAME ARGS...: one file per call under $STUB_DIR/calls, named so that sorting gives call order,
# holding the node and the arguments NUL-separated (arguments may hold newlines: the inline Python).
record() {
    local name=$1
    shift
    local f
    f=$STUB_DIR/calls/$(date +%s%N)-$BASHPID-$RANDOM-$name
    printf '%s\0' "$name" "${STUB_NODE:-batch}" "$@" >"$f.tmp"
    mv "$f.tmp" "$f"
}
in_list() {  # in_list ITEM "a,b,c"
    [[ ,$2, == *",$1,"* ]]
}
