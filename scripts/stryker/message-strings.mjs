// A Stryker ignorer: no mutants in the text of error messages. Changing a message's wording
// changes no behaviour a user relies on (they `instanceof` the error class and read its typed
// fields), and a test that kills such a mutant would only pin the wording. Ignored: string and
// template literals (and their concatenations) that are an argument of `new SomethingError(...)`
// or of `bad(...)` (retry.ts's option-error helper), and the whole value of a `detail:` or
// `message:` property (its strings and the conditions that choose between them). Operation
// names, reasons and other strings that code compares stay mutated.
import { declareValuePlugin, PluginKind } from "@stryker-mutator/api/plugin";

const MESSAGE_HELPERS = new Set(["bad"]);
const MESSAGE_PROPERTIES = new Set(["detail", "message"]);

/** A callee that builds an error (or its message): `new FooError(...)`, `bad(...)`. */
function buildsMessage(callee) {
  if (callee?.type !== "Identifier") return false;
  return /Error$/.test(callee.name) || MESSAGE_HELPERS.has(callee.name);
}

/**
 * Anything inside the value of a `detail:` or `message:` property (`detail: n === 1 ? undefined :
 * \`${n} rows\``): that value only ever becomes the text of a message, so neither its strings nor
 * the conditions choosing between them are behaviour.
 */
function insideMessageProperty(path) {
  let child = path;
  for (let parent = path.parentPath; parent; parent = parent.parentPath) {
    if (parent.isObjectProperty() && child.key === "value") {
      const key = parent.node.key;
      return key.type === "Identifier" && MESSAGE_PROPERTIES.has(key.name);
    }
    if (parent.isStatement() || parent.isFunction()) return false;
    child = parent;
  }
  return false;
}

function isMessageText(path) {
  if (insideMessageProperty(path)) return true;
  if (!path.isStringLiteral() && !path.isTemplateLiteral()) return false;
  let child = path;
  let parent = path.parentPath;
  // Up through what only assembles the text: `a + b`, nested templates, `x ? "a" : "b"`.
  while (
    parent &&
    (parent.isBinaryExpression({ operator: "+" }) ||
      parent.isTemplateLiteral() ||
      (parent.isConditionalExpression() && child.key !== "test"))
  ) {
    child = parent;
    parent = parent.parentPath;
  }
  if (!parent) return false;
  if ((parent.isNewExpression() || parent.isCallExpression()) && child.listKey === "arguments") {
    return buildsMessage(parent.node.callee);
  }
  if (parent.isObjectProperty() && child.key === "value") {
    const key = parent.node.key;
    return key.type === "Identifier" && MESSAGE_PROPERTIES.has(key.name);
  }
  return false;
}

export const strykerPlugins = [
  declareValuePlugin(PluginKind.Ignore, "message-strings", {
    shouldIgnore(path) {
      return isMessageText(path) ? "the text of an error message: wording is not behaviour" : undefined;
    },
  }),
];
