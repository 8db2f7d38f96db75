/**
 * Every TypeScript block of README.md and docs/*.md compiles under `strict`, against the
 * library's own source (as `typeorm-locking`) and the TypeORM line of the jest project, so a
 * documented example that does not compile fails here. The rules (also in docs/testing.md):
 *
 * - A block fenced ```ts (or ```typescript) is a complete module: it compiles on its own, with
 *   its imports; top-level await is allowed.
 * - A block fenced ```ts fragment is a piece of an app: it is compiled the same way, except that
 *   names it uses without declaring or importing them (`dataSource`, `Order`, `manager`...), the
 *   implicit `any` of parameters typed through such names, and imports of the app's own files
 *   (`./order`) or of packages this repository does not install are allowed; they stand for the
 *   app around it. Syntax, the library's API (imports from `typeorm-locking` and `typeorm` must
 *   resolve) and the types of everything the block does declare are checked. Write elisions as
 *   comments (`/* ... *\/`), not as a bare `...`.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import ts from "typescript";

declare const TYPEORM_LINE: string;

const root = join(__dirname, "..");
const virtualFolder = join(root, ".docs-check");

interface Block {
  /** The document, relative to the repository: `docs/aggregates.md`. */
  doc: string;
  /** 1-based line of the block's first code line in the document. */
  line: number;
  fragment: boolean;
  code: string;
  /** Where the block is compiled (a virtual file, never written). */
  fileName: string;
}

/** The TypeScript blocks of one Markdown document. */
function blocksOf(doc: string): Block[] {
  const lines = readFileSync(join(root, doc), "utf8").split("\n");
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*(\S*)(.*)$/.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence, language, rest] = open;
    let end = i + 1;
    while (end < lines.length && !lines[end].trimStart().startsWith(fence)) end++;
    if (language === "ts" || language === "typescript") {
      const code = lines
        .slice(i + 1, end)
        .map((line) => (line.startsWith(indent) ? line.slice(indent.length) : line.trimStart()))
        .join("\n");
      const fileName = join(virtualFolder, `${doc.replace(/[/.]/g, "_")}_line${i + 2}.ts`);
      blocks.push({ doc, line: i + 2, fragment: rest.trim().split(/\s+/).includes("fragment"), code, fileName });
    }
    i = end;
  }
  return blocks;
}

const documents = [
  "README.md",
  ...readdirSync(join(root, "docs"))
    .filter((name) => name.endsWith(".md"))
    .sort()
    .map((name) => `docs/${name}`),
];
const blocks = documents.flatMap(blocksOf);

/**
 * Diagnostics a fragment may have, all caused by the app around it: a name it does not declare,
 * a parameter typed by such a name (`dataSource.transaction(async (manager) => ...)`), a module
 * of the app or a package this repository does not install. `typeorm` and `typeorm-locking`
 * always resolve, so a misspelt import of either still fails.
 */
const ALLOWED_IN_FRAGMENTS = new Set([
  2304, // Cannot find name 'x'.
  2552, // Cannot find name 'x'. Did you mean 'y'?
  18004, // No value exists in scope for the shorthand property 'x'.
  7006, // Parameter 'x' implicitly has an 'any' type.
  7031, // Binding element 'x' implicitly has an 'any' type.
  2307, // Cannot find module 'x' or its corresponding type declarations.
  2792, // Cannot find module 'x'. Did you mean to set the 'moduleResolution' option...?
]);
function allowedInFragment(diagnostic: ts.Diagnostic): boolean {
  if (!ALLOWED_IN_FRAGMENTS.has(diagnostic.code)) return false;
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n");
  return !/Cannot find module '(typeorm|typeorm-locking|typeorm\/.*)'/.test(message);
}

/**
 * The app every fragment lives in, declared globally for the fragments' program only: the names
 * the docs use most, typed, so that a fragment's calls on them are checked too. A fragment that
 * declares one of these names itself (its own `class Order`) shadows it.
 */
const FRAGMENT_PRELUDE = `
declare class Order {
  id: number;
  address: string;
  status: string;
  version: number;
  lines: OrderLine[];
  addLine(product: string, quantity: number): void;
  readonly total: number;
}
declare class OrderLine {
  id: number;
  order: Order;
  product: string;
  quantity: number;
}
declare const dataSource: import("typeorm").DataSource;
declare const manager: import("typeorm").EntityManager;
declare const orders: import("typeorm").Repository<Order>;
declare const id: number;
declare const app: import("express").Express;
`;
const preludeFile = join(virtualFolder, "fragment-prelude.d.ts");

function compile(fragments: boolean, oldProgram?: ts.Program): ts.Program {
  const typeorm = join(root, "node_modules", TYPEORM_LINE);
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    lib: ["lib.es2022.d.ts"],
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    experimentalDecorators: true,
    emitDecoratorMetadata: true,
    esModuleInterop: true,
    skipLibCheck: true,
    types: ["node"],
    paths: {
      "typeorm-locking": [join(root, "src/index.ts")],
      typeorm: [typeorm],
      "typeorm/*": [`${typeorm}/*`],
    },
  };
  const virtual = new Map(
    blocks
      .filter((block) => block.fragment === fragments)
      .map((block) => [block.fileName, `${block.code}\nexport {};\n`]),
  );
  if (fragments) virtual.set(preludeFile, FRAGMENT_PRELUDE);
  const host = ts.createCompilerHost(options);
  const { fileExists, readFile, getSourceFile } = host;
  host.fileExists = (name) => virtual.has(name) || fileExists.call(host, name);
  host.readFile = (name) => virtual.get(name) ?? readFile.call(host, name);
  host.getSourceFile = (name, language, onError, create) => {
    const text = virtual.get(name);
    return text === undefined
      ? getSourceFile.call(host, name, language, onError, create)
      : ts.createSourceFile(name, text, language, true);
  };
  return ts.createProgram([...virtual.keys()], options, host, oldProgram);
}

/** What is wrong with a block, in terms of the document's own lines; empty if it compiles. */
function problemsOf(program: ts.Program, block: Block): string[] {
  const source = program.getSourceFile(block.fileName);
  if (!source) return [`${block.doc}:${block.line}: the block was not compiled`];
  const diagnostics = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)];
  const codeLines = block.code.split("\n");
  return diagnostics
    .filter((diagnostic) => !(block.fragment && allowedInFragment(diagnostic)))
    .map((diagnostic) => {
      const at = diagnostic.start === undefined ? 0 : source.getLineAndCharacterOfPosition(diagnostic.start).line;
      const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n    ");
      return `${block.doc}:${block.line + at}: TS${diagnostic.code}: ${message}\n    > ${codeLines[at]?.trim() ?? ""}`;
    });
}

describe(`TypeScript blocks of README.md and docs/*.md compile under strict (${TYPEORM_LINE})`, () => {
  let modules: ts.Program;
  let fragments: ts.Program;
  beforeAll(() => {
    modules = compile(false);
    fragments = compile(true, modules);
  }, 120_000);

  it("finds the blocks (README.md has at least two)", () => {
    expect(blocks.filter((block) => block.doc === "README.md").length).toBeGreaterThanOrEqual(2);
  });

  for (const block of blocks) {
    const kind = block.fragment ? "ts fragment" : "ts";
    it(`${block.doc}:${block.line} (${kind})`, () => {
      const problems = problemsOf(block.fragment ? fragments : modules, block);
      if (problems.length > 0) {
        const hint = block.fragment
          ? "A fragment may use undeclared names and relative imports; everything else must compile."
          : "A ```ts block must compile on its own; a piece of an app is fenced ```ts fragment.";
        throw new Error(
          `${relative(root, join(root, block.doc))}, block at line ${block.line} (${kind}) does not compile ` +
            `(TypeORM line ${TYPEORM_LINE}):\n  ${problems.join("\n  ")}\n${hint} Rules: docs/testing.md.`,
        );
      }
    });
  }
});

/**
 * The docs ship in the package, but examples/, test/, bench/ and scripts/ do not: a doc names such
 * a file as a link to the repository (`[\`test/x.test.ts\`](https://github.com/.../blob/main/test/x.test.ts)`).
 */
describe("README.md and docs/*.md link the repository's own files by URL", () => {
  const REPOSITORY = "https://github.com/typeorm-locking/typeorm-locking";
  const bare = /(?<!\[)`((?:examples|test|bench|scripts)\/[\w./-]*)`(?!\]\()/g;
  const relativeLink = /\]\((?:\.\.\/|\.\/)?((?:examples|test|bench|scripts)\/[^)]*)\)/g;
  for (const doc of documents) {
    it(doc, () => {
      const problems: string[] = [];
      let fence: string | undefined;
      readFileSync(join(root, doc), "utf8")
        .split("\n")
        .forEach((text, index) => {
          const open = /^\s*(`{3,}|~{3,})/.exec(text);
          if (open) {
            if (fence === undefined) fence = open[1];
            else if (text.trimStart().startsWith(fence)) fence = undefined;
            return;
          }
          if (fence !== undefined) return;
          for (const match of [...text.matchAll(bare), ...text.matchAll(relativeLink)]) {
            problems.push(`${doc}:${index + 1}: ${match[1]} -> [\`${match[1]}\`](${REPOSITORY}/blob/main/${match[1]})`);
          }
        });
      if (problems.length > 0) {
        throw new Error(`not in the package, so link it by the repository URL:\n  ${problems.join("\n  ")}`);
      }
    });
  }
});
