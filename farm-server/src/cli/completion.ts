/**
 * `optimus completion bash|zsh|fish`: a completion script generated from the CLI's own command tree
 * (commands, subcommands, options), so it never lists a command that does not exist. Each shell
 * gets the same rule: the words typed so far that name commands give the command path; an option
 * that takes a value completes files; after `-` come the options of that command (its own and the
 * global ones), otherwise its subcommands — or files, where a command takes a file or an id.
 */
import type { Command, Option } from "commander";
import { CliError, EXIT } from "./errors.js";

interface OptionSpec {
  flags: string[];
  takesValue: boolean;
  description: string;
}
interface CommandNode {
  /** the command path without the program's name ("" for the program itself, "task list", …) */
  path: string;
  subcommands: Array<{ name: string; description: string }>;
  options: OptionSpec[];
}

const optionSpec = (o: Option): OptionSpec => ({
  flags: [o.long, o.short].filter((f): f is string => !!f),
  takesValue: o.required || o.optional,
  description: o.description,
});

const HELP: OptionSpec = { flags: ["--help", "-h"], takesValue: false, description: "display help for command" };

/** Every command of the tree with its subcommands and options (the global ones on each). */
export function commandTree(program: Command): CommandNode[] {
  const globals = program.options.map(optionSpec);
  const out: CommandNode[] = [];
  const walk = (cmd: Command, path: string) => {
    out.push({
      path,
      subcommands: cmd.commands.map((c) => ({ name: c.name(), description: c.description() })),
      options: [...(path ? cmd.options.map(optionSpec) : []), ...globals, HELP],
    });
    for (const c of cmd.commands) walk(c, path ? `${path} ${c.name()}` : c.name());
  };
  walk(program, "");
  return out;
}

const words = (xs: string[]) => xs.join(" ");
/** Single-quoted for sh, zsh and fish alike ('…'\''…' in sh; fish takes \' inside quotes). */
const shQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const fishQuote = (s: string) => `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
const oneLine = (s: string) => s.replace(/\s+/g, " ").trim();

/** The helper functions bash and zsh share: subcommands and options per command path. */
function shHelpers(name: string, tree: CommandNode[]): string {
  const valueFlags = [...new Set(tree.flatMap((n) => n.options.filter((o) => o.takesValue).flatMap((o) => o.flags)))].sort();
  return [
    `_${name}_known() {`,
    `  case "$1" in`,
    `    ${tree.map((n) => shQuote(n.path)).join("|")}) return 0 ;;`,
    `  esac`,
    `  return 1`,
    `}`,
    `_${name}_subcommands() {`,
    `  case "$1" in`,
    ...tree
      .filter((n) => n.subcommands.length)
      .map((n) => `    ${shQuote(n.path)}) echo ${shQuote(words(n.subcommands.map((s) => s.name)))} ;;`),
    `  esac`,
    `}`,
    `_${name}_options() {`,
    `  case "$1" in`,
    ...tree.map((n) => `    ${shQuote(n.path)}) echo ${shQuote(words(n.options.flatMap((o) => o.flags)))} ;;`),
    `  esac`,
    `}`,
    `_${name}_takes_value() {`,
    `  case "$1" in`,
    `    ${valueFlags.join("|")}) return 0 ;;`,
    `  esac`,
    `  return 1`,
    `}`,
    // The command path from the words before the cursor; "value" when the cursor is an option's value.
    `_${name}_path() {`,
    `  local cmdpath="" w skip=0`,
    `  for w in "$@"; do`,
    `    if [ "$skip" = 1 ]; then skip=0; continue; fi`,
    `    case "$w" in`,
    `      --*=*) ;;`,
    `      -*) _${name}_takes_value "$w" && skip=1 ;;`,
    `      *) if _${name}_known "\${cmdpath:+$cmdpath }$w"; then cmdpath="\${cmdpath:+$cmdpath }$w"; fi ;;`,
    `    esac`,
    `  done`,
    `  if [ "$skip" = 1 ]; then echo "<value>"; else echo "$cmdpath"; fi`,
    `}`,
  ].join("\n");
}

export function bashCompletion(name: string, tree: CommandNode[]): string {
  return `# ${name} completion for bash: eval "$(${name} completion bash)" in ~/.bashrc
${shHelpers(name, tree)}
_${name}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" cmdpath
  cmdpath="$(_${name}_path "\${COMP_WORDS[@]:1:COMP_CWORD-1}")"
  if [ "$cmdpath" = "<value>" ]; then
    COMPREPLY=($(compgen -f -- "$cur"))
  elif [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(_${name}_options "$cmdpath")" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(_${name}_subcommands "$cmdpath")" -- "$cur"))
  fi
}
complete -o default -F _${name} ${name}
`;
}

export function zshCompletion(name: string, tree: CommandNode[]): string {
  const describe = (n: CommandNode) =>
    n.subcommands.map((s) => shQuote(`${s.name}:${oneLine(s.description).replace(/:/g, "\\:")}`)).join(" ");
  return `#compdef ${name}
# ${name} completion for zsh: eval "$(${name} completion zsh)" in ~/.zshrc (after compinit),
# or save it as _${name} in a folder of $fpath
${shHelpers(name, tree)}
_${name}_described() {
  case "$1" in
${tree
  .filter((n) => n.subcommands.length)
  .map((n) => `    ${shQuote(n.path)}) print -rl -- ${describe(n)} ;;`)
  .join("\n")}
  esac
}
_${name}() {
  local cmdpath cur="\${words[CURRENT]}"
  cmdpath="$(_${name}_path "\${(@)words[2,CURRENT-1]}")"
  if [[ "$cmdpath" == "<value>" ]]; then
    _files
  elif [[ "$cur" == -* ]]; then
    compadd -- \${=$(_${name}_options "$cmdpath")}
  else
    local -a subs
    subs=("\${(@f)$(_${name}_described "$cmdpath")}")
    if [[ -n "\${subs[1]}" ]]; then _describe 'command' subs; else _files; fi
  fi
}
if [[ "\${zsh_eval_context[-1]}" == loadautofunc ]]; then _${name} "$@"; else compdef _${name} ${name}; fi
`;
}

export function fishCompletion(name: string, tree: CommandNode[]): string {
  const lines = [
    `# ${name} completion for fish: ${name} completion fish > ~/.config/fish/completions/${name}.fish`,
    `function __${name}_path`,
    `    set -l words (commandline -opc)`,
    `    set -e words[1]`,
    `    set -l cmdpath ""`,
    `    set -l skip 0`,
    `    for w in $words`,
    `        if test $skip = 1; set skip 0; continue; end`,
    `        switch $w`,
    `            case '--*=*'`,
    `            case '-*'`,
    `                if contains -- $w ${tree
      .flatMap((n) => n.options.filter((o) => o.takesValue).flatMap((o) => o.flags))
      .filter((f, i, a) => a.indexOf(f) === i)
      .join(" ")}; set skip 1; end`,
    `            case '*'`,
    `                set -l next (string trim -- "$cmdpath $w")`,
    `                if contains -- $next ${tree
      .filter((n) => n.path)
      .map((n) => fishQuote(n.path))
      .join(" ")}; set cmdpath $next; end`,
    `        end`,
    `    end`,
    `    echo $cmdpath`,
    `end`,
  ];
  for (const n of tree) {
    const cond = `'test (__${name}_path) = ${fishQuote(n.path).replace(/'/g, '"')}'`;
    for (const s of n.subcommands)
      lines.push(`complete -c ${name} -f -n ${cond} -a ${fishQuote(s.name)} -d ${fishQuote(oneLine(s.description))}`);
    for (const o of n.options) {
      const long = o.flags.find((f) => f.startsWith("--"));
      const short = o.flags.find((f) => /^-[^-]$/.test(f));
      if (!long) continue;
      lines.push(
        `complete -c ${name} -n ${cond} -l ${long.slice(2)}${short ? ` -s ${short.slice(1)}` : ""}${o.takesValue ? " -r" : ""} -d ${fishQuote(oneLine(o.description))}`,
      );
    }
  }
  return lines.join("\n") + "\n";
}

export function completionScript(program: Command, shell: string): string {
  const tree = commandTree(program);
  const name = program.name();
  if (shell === "bash") return bashCompletion(name, tree);
  if (shell === "zsh") return zshCompletion(name, tree);
  if (shell === "fish") return fishCompletion(name, tree);
  throw new CliError(`no completion for '${shell}': choose bash, zsh or fish`, EXIT.usage);
}
