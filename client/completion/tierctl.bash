# tierctl.bash -- bash completion for tierctl: commands and global options.
#
# The words come from `tierctl __complete`, which prints tierctl's own
# command and option tables, so this file never falls behind the program.
# Install: source it from ~/.bashrc, or copy it to
# /usr/share/bash-completion/completions/tierctl.

_tierctl() {
    local cur prev words
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev=""
    ((COMP_CWORD > 0)) && prev="${COMP_WORDS[COMP_CWORD - 1]}"
    case "$prev" in
    --url | --timeout | --tls-server-name)
        return 0 # a value: nothing sensible to offer
        ;;
    --token-file | --tls-ca)
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return 0
        ;;
    esac
    words=$("${COMP_WORDS[0]}" __complete 2>/dev/null) || return 0
    mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
}
complete -F _tierctl tierctl
