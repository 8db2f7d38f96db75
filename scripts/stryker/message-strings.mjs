// A Stryker ignorer: no mutants in the text of error messages. Changing a message's wording
// changes no behaviour a user relies on (they `instanceof` the error class and read its typed
// fields), and a test that kills such a mutant would only pin the wording. Ignored:
//
// - string and template literals (and their concatenations, and everything inside them:
//   `${i + 1}`, `${code === 0 ? "a NUL" : "a surrogate"}`) that are an argument of
//   `new SomethingError(...)`, of `bad(...)` (retry.ts's option-error helper), of `super(...)` in
//   the constructor of a class named `SomethingError`, or the value assigned to an error's `.message`;
// - the default value of a parameter named `message`, `what`, `where` or `reason`;
// - the whole value of a `detail:`, `message:` or `coveredBy:` property (its strings and the
//   conditions that choose between them);
// - an argument given for a parameter named `what`, `where` or `reason` (with or without a default)
//   of a function declared in the same file (`storable(value, "tryLock() id", 150)`,
//   `refuse("the handle no longer holds it")`): such a parameter only names the caller or the
//   value, or words why, in a message. A function declared in another file is not seen: its
//   messages carry a `// Stryker disable` comment (below);
// - the body of a function whose name starts with `describe` (`describeValue`, `describeChar`):
//   it renders a value for a message and nothing else.
//
// Operation names, dialect names and other strings that code compares stay mutated. A message the rules
// above do not see carries a `// Stryker disable next-line ...: wording` comment where it is built.
import { declareValuePlugin, PluginKind } from "@stryker-mutator/api/plugin";

const MESSAGE_HELPERS = new Set(["bad"]);
const MESSAGE_PROPERTIES = new Set(["detail", "message", "coveredBy"]);
const MESSAGE_PARAMETERS = new Set(["what", "where", "reason"]);
const DESCRIBES = /^describe([A-Z]|$)/;

/**
 * A call that builds an error (or its message): `new FooError(...)`, `bad(...)`, and `super(...)`
 * in the constructor of a class named `...Error` (the message it hands to `Error`).
 */
function buildsMessage(call) {
  const callee = call.node.callee;
  if (callee?.type === "Super") return /Error$/.test(call.findParent((p) => p.isClass())?.node.id?.name ?? "");
  if (callee?.type !== "Identifier") return false;
  return /Error$/.test(callee.name) || MESSAGE_HELPERS.has(callee.name);
}

/** `(message = "...")`, `(what = "this request")`: a parameter's default that only words a message. */
function isMessageDefault(parent, child) {
  if (!parent.isAssignmentPattern() || child.key !== "right") return false;
  const name = parent.node.left.type === "Identifier" ? parent.node.left.name : "";
  return (name === "message" || MESSAGE_PARAMETERS.has(name)) && parent.parentPath.isFunction();
}

function isMessageProperty(parent, child) {
  if (!parent.isObjectProperty() || child.key !== "value") return false;
  const key = parent.node.key;
  return key.type === "Identifier" && MESSAGE_PROPERTIES.has(key.name);
}

/** `error.message = ...`: the value assigned. */
function isMessageAssignment(parent, child) {
  if (!parent.isAssignmentExpression() || child.key !== "right") return false;
  const target = parent.node.left;
  return (
    target.type === "MemberExpression" && target.property.type === "Identifier" && target.property.name === "message"
  );
}

/**
 * The parameters of each function declared so far in the file, by the node of its name. A call
 * cannot read them from its binding once Stryker has placed the declaration's own mutants: a
 * `const refuse = (reason) => ...` above the call has become
 * `const refuse = stryMutAct("1") ? () => undefined : (() => { const refuse = ...; return refuse; })()`
 * by then, and the rule missed every message given to such a helper (2026-12-07).
 */
const declaredParams = new WeakMap();

/** Notes the parameters of `path` if it declares a function by name (seen before it is mutated). */
function rememberDeclaration(path) {
  const { node } = path;
  if (path.isFunctionDeclaration() && node.id) declaredParams.set(node.id, node.params);
  else if (path.isVariableDeclarator() && node.id.type === "Identifier" && isFunctionNode(node.init)) {
    declaredParams.set(node.id, node.init.params);
  }
}

const isFunctionNode = (node) => node?.type === "ArrowFunctionExpression" || node?.type === "FunctionExpression";

/** Argument `index` of a call to a function of this file whose parameter there is `what`/`where`. */
function isMessageParameter(call, index) {
  const callee = call.node.callee;
  if (callee.type !== "Identifier") return false;
  const binding = call.scope.getBinding(callee.name);
  if (!binding) return false;
  // A function declared below the call (hoisted) is not seen yet, and not mutated yet either.
  let declaration = binding.path.node;
  if (declaration.type === "VariableDeclarator") declaration = declaration.init;
  const param = (declaredParams.get(binding.identifier) ?? declaration?.params)?.[index];
  // `where = "OfflineLockManager"`: a parameter with a default is named on its left.
  const name = param?.type === "AssignmentPattern" ? param.left : param;
  return name?.type === "Identifier" && MESSAGE_PARAMETERS.has(name.name);
}

/** Whether the value that `child` (a child of `parent`) is only ever becomes message text. */
function endsInMessage(parent, child) {
  if (isMessageProperty(parent, child) || isMessageAssignment(parent, child)) return true;
  if (isMessageDefault(parent, child)) return true;
  if ((parent.isNewExpression() || parent.isCallExpression()) && child.listKey === "arguments") {
    return buildsMessage(parent) || (parent.isCallExpression() && isMessageParameter(parent, child.key));
  }
  return false;
}

/** The name of a function declared as `function f()` or `const f = () => ...`. */
function functionName(fn) {
  if (fn.node.id) return fn.node.id.name;
  const declarator = fn.parentPath;
  return declarator?.isVariableDeclarator() && declarator.node.id.type === "Identifier"
    ? declarator.node.id.name
    : undefined;
}

/**
 * A value that is text: a string or template literal, a `+` with text on one side, or a
 * conditional between two texts (`n === 1 ? "row" : \`${n} rows\``).
 */
function isTextual(node) {
  switch (node.type) {
    case "StringLiteral":
    case "TemplateLiteral":
      return true;
    case "BinaryExpression":
      return node.operator === "+" && (isTextual(node.left) || isTextual(node.right));
    case "ConditionalExpression":
      return isTextual(node.consequent) && isTextual(node.alternate);
    default:
      return false;
  }
}

function isMessageText(path) {
  const fn = path.getFunctionParent();
  if (fn && DESCRIBES.test(functionName(fn) ?? "")) return true;
  // Up to what receives the value this mutant sits in: if that is a message and the value is
  // text, everything in it (strings, `${i + 1}`, the conditions choosing a word) is wording.
  let child = path;
  for (let parent = path.parentPath; parent; parent = parent.parentPath) {
    if (endsInMessage(parent, child)) return isMessageProperty(parent, child) || isTextual(child.node);
    if (parent.isStatement() || parent.isFunction()) return false;
    child = parent;
  }
  return false;
}

export const strykerPlugins = [
  declareValuePlugin(PluginKind.Ignore, "message-strings", {
    shouldIgnore(path) {
      rememberDeclaration(path);
      return isMessageText(path) ? "the text of an error message: wording is not behaviour" : undefined;
    },
  }),
];
