/**
 * A TCP proxy between a client and a PostgreSQL or MySQL/MariaDB server that cuts one connection
 * at a chosen statement, deterministically: the fault of a network cut, a crash or a killed
 * session, at the one moment a test needs it.
 *
 * It reads the client's side of the wire protocol (PostgreSQL: a simple query 'Q' or the 'P'
 * Parse message of the extended protocol; MySQL/MariaDB: a COM_QUERY packet) and, once armed, on
 * the first statement that matches:
 * - `before-forward`: drops the statement and closes both sides. The server never sees it; a
 *   transaction it belonged to ends with its session, rolled back.
 * - `after-forward`: forwards it (and whatever the client sends with it), waits for the server's
 *   answer, swallows it and only then closes both sides. The statement took effect (a COMMIT
 *   committed), and the client never learns it.
 * Every other byte passes through unchanged in both directions.
 *
 * MySQL/MariaDB only, `refuse()`: answers a statement with a server error in the server's place,
 * without forwarding it, as a Galera node does that lost the primary component (1047 for every
 * statement, COMMIT and ROLLBACK included, its transaction kept open; 1180 for a COMMIT it could
 * not replicate). The server's session goes on with whatever it was in, which is what the library
 * must cope with: no cluster is needed to reproduce the node's answers. Scope "everything" refuses
 * SET and SHOW too: the library's own questions to the server fail like the statement they explain.
 */
import net from "node:net";

export type WireProtocol = "postgres" | "mysql";
export type CutPoint = "before-forward" | "after-forward";

/** A server error the proxy answers with (an ERR packet), as MySQL/MariaDB would. */
export interface Refusal {
  errno: number;
  /** Five characters, e.g. "08S01" or "HY000". */
  sqlState: string;
  message: string;
}

/**
 * What `refuse()` refuses: the matching statement only, or that one and every later statement of
 * its connection until `heal()`: but SET and SHOW ("session", a node outside the primary
 * component), or all of them ("everything").
 */
export type RefusalScope = "statement" | "session" | "everything";

export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  /**
   * Cuts the connection on which the next statement matching `statement` (default: `COMMIT`)
   * goes by, at `point`. The promise resolves with the statement once the cut is made.
   */
  arm(point: CutPoint, statement?: RegExp): Promise<string>;
  /** Disarms a fault that has not fired. */
  disarm(): void;
  /**
   * MySQL/MariaDB: answers the next statement matching `statement` (default: `COMMIT`) with
   * `refusal` instead of forwarding it, and with `scope` "session" every later statement of that
   * connection too but SET and SHOW (which such a node answers), with "everything" every later
   * statement, until `heal()`. Resolves with the first refused statement.
   */
  refuse(refusal: Refusal, scope: RefusalScope, statement?: RegExp): Promise<string>;
  /** Ends every "session" refusal: the statements of those connections reach the server again. */
  heal(): void;
  /** Statements seen (every connection), for tests that check the proxy saw the traffic. */
  readonly statementsSeen: number;
  close(): Promise<void>;
}

interface Armed {
  point: CutPoint;
  statement: RegExp;
  fired: (statement: string) => void;
}

interface ArmedRefusal {
  refusal: Refusal;
  scope: RefusalScope;
  statement: RegExp;
  fired: (statement: string) => void;
}

/** The ERR packet answering the client message `command` (its sequence number plus one). */
function mysqlErrorPacket(command: Buffer, { errno, sqlState, message }: Refusal): Buffer {
  const payload = Buffer.concat([
    Buffer.from([0xff, errno & 0xff, errno >> 8]),
    Buffer.from(`#${sqlState}`, "ascii"),
    Buffer.from(message, "utf8"),
  ]);
  const header = Buffer.alloc(4);
  header.writeUIntLE(payload.length, 0, 3);
  header[3] = (command[3] + 1) & 0xff;
  return Buffer.concat([header, payload]);
}

/** The statement text of one client message, or `undefined` if it carries none. */
type StatementOf = (message: Buffer) => string | undefined;

/** Splits a client's byte stream into whole messages. */
interface Framer {
  /** Removes and returns the whole messages at the start of `buffer`, and the rest. */
  split(buffer: Buffer): { messages: Buffer[]; rest: Buffer };
  statementOf: StatementOf;
  /** Whether the server's bytes so far end its answer to the cut statement. */
  answered(serverBytes: Buffer): boolean;
}

function postgresFramer(): Framer {
  // The startup message (and an SSLRequest before it) has no type byte; every later one does.
  let startup = true;
  return {
    split(buffer) {
      const messages: Buffer[] = [];
      let at = 0;
      for (;;) {
        if (startup) {
          if (buffer.length - at < 4) break;
          const length = buffer.readInt32BE(at);
          if (buffer.length - at < length) break;
          const code = length >= 8 ? buffer.readInt32BE(at + 4) : 0;
          if (code !== 80877103) startup = false; // SSLRequest keeps the next message untyped
          messages.push(buffer.subarray(at, at + length));
          at += length;
        } else {
          if (buffer.length - at < 5) break;
          const total = 1 + buffer.readInt32BE(at + 1);
          if (buffer.length - at < total) break;
          messages.push(buffer.subarray(at, at + total));
          at += total;
        }
      }
      return { messages, rest: buffer.subarray(at) };
    },
    statementOf(message) {
      const type = String.fromCharCode(message[0]);
      if (type === "Q") return message.toString("utf8", 5, message.length - 1);
      if (type === "P") {
        // Parse: statement name (NUL-terminated), then the query (NUL-terminated), then types.
        const nameEnd = message.indexOf(0, 5);
        const queryEnd = message.indexOf(0, nameEnd + 1);
        return nameEnd < 0 || queryEnd < 0 ? undefined : message.toString("utf8", nameEnd + 1, queryEnd);
      }
      return undefined;
    },
    // ReadyForQuery ('Z', length 5, status): the server finished the statement (and its Sync).
    answered: (bytes) => bytes.includes(Buffer.from([0x5a, 0, 0, 0, 5])),
  };
}

function mysqlFramer(): Framer {
  return {
    split(buffer) {
      const messages: Buffer[] = [];
      let at = 0;
      while (buffer.length - at >= 4) {
        const total = 4 + buffer.readUIntLE(at, 3);
        if (buffer.length - at < total) break;
        messages.push(buffer.subarray(at, at + total));
        at += total;
      }
      return { messages, rest: buffer.subarray(at) };
    },
    // COM_QUERY (0x03) followed by the statement text.
    statementOf: (message) => (message.length > 4 && message[4] === 0x03 ? message.toString("utf8", 5) : undefined),
    // The server answers one command at a time: its first bytes are the whole OK or error packet.
    answered: (bytes) => bytes.length >= 4 && bytes.length >= 4 + bytes.readUIntLE(0, 3),
  };
}

/** Starts a proxy on 127.0.0.1 (a free port) to `target`. */
export async function startFaultProxy(
  protocol: WireProtocol,
  target: { host: string; port: number },
): Promise<FaultProxy> {
  let armed: Armed | undefined;
  let armedRefusal: ArmedRefusal | undefined;
  /** Ends the "session" refusal of each connection under one. */
  const refusing = new Set<() => void>();
  let statementsSeen = 0;
  const sockets = new Set<net.Socket>();

  const server = net.createServer((client) => {
    const framer = protocol === "postgres" ? postgresFramer() : mysqlFramer();
    const upstream = net.connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    let pending: Buffer = Buffer.alloc(0);
    /** The refusal this connection answers every statement with, until healed. */
    let refusedWith: Refusal | undefined;
    /** Whether SET and SHOW are refused too. */
    let refusingEverything = false;
    /** After an after-forward match: the server's bytes are swallowed until its answer is whole. */
    let swallowed: Buffer | undefined;
    let onAnswered: (() => void) | undefined;
    const cut = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const [socket, other] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      socket.on("error", () => other.destroy());
      socket.on("close", () => {
        sockets.delete(socket);
        other.destroy();
      });
    }
    upstream.on("data", (chunk: Buffer) => {
      if (swallowed === undefined) {
        client.write(chunk);
        return;
      }
      swallowed = Buffer.concat([swallowed, chunk]);
      if (framer.answered(swallowed)) onAnswered?.();
    });
    client.on("data", (chunk: Buffer) => {
      if (swallowed !== undefined) {
        upstream.write(chunk); // the rest of an extended-protocol batch (Bind, Execute, Sync)
        return;
      }
      const { messages, rest } = framer.split(Buffer.concat([pending, chunk]));
      pending = rest;
      for (const [index, message] of messages.entries()) {
        const statement = framer.statementOf(message);
        if (statement !== undefined) statementsSeen++;
        // A node outside the primary component still answers SET and SHOW (the library asks it
        // what it is with a SHOW).
        if (statement !== undefined && refusedWith && (refusingEverything || !/^\s*(SET|SHOW)\b/i.test(statement))) {
          client.write(mysqlErrorPacket(message, refusedWith));
          continue;
        }
        const refusal = armedRefusal;
        if (statement !== undefined && refusal?.statement.test(statement)) {
          armedRefusal = undefined;
          if (refusal.scope !== "statement") {
            refusedWith = refusal.refusal;
            refusingEverything = refusal.scope === "everything";
            const heal = () => {
              refusedWith = undefined;
            };
            refusing.add(heal);
            client.on("close", () => refusing.delete(heal));
          }
          client.write(mysqlErrorPacket(message, refusal.refusal));
          refusal.fired(statement);
          continue;
        }
        const fault = armed;
        if (statement === undefined || !fault || !fault.statement.test(statement)) {
          upstream.write(message);
          continue;
        }
        armed = undefined;
        if (fault.point === "before-forward") {
          cut();
          fault.fired(statement);
          return;
        }
        swallowed = Buffer.alloc(0);
        onAnswered = () => {
          cut();
          fault.fired(statement);
        };
        upstream.write(Buffer.concat([...messages.slice(index), pending]));
        pending = Buffer.alloc(0);
        return;
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    host: "127.0.0.1",
    port,
    arm(point, statement = /^\s*COMMIT\s*;?\s*$/i) {
      return new Promise<string>((fired) => {
        armed = { point, statement, fired };
      });
    },
    disarm() {
      armed = undefined;
      armedRefusal = undefined;
    },
    refuse(refusal, scope, statement = /^\s*COMMIT\s*;?\s*$/i) {
      if (protocol !== "mysql") throw new Error("refuse() answers as MySQL/MariaDB only");
      return new Promise<string>((fired) => {
        armedRefusal = { refusal, scope, statement, fired };
      });
    },
    heal() {
      for (const heal of refusing) heal();
      refusing.clear();
    },
    get statementsSeen() {
      return statementsSeen;
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
