import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import { ApiError } from "../http/errors";
import { log } from "./log";

export const ACCESS_TOKEN_TTL_SECONDS = 15 * 60;
export const REFRESH_TOKEN_TTL_SECONDS = 7 * 24 * 60 * 60;
const ALGORITHM = "HS256";
const ISSUER = "genai-edge";

type TokenType = "access" | "refresh";

export interface TokenClaims {
  userId: string;
  type: TokenType;
  tokenId: string;
  familyId: string;
}

// One imported key per secret per isolate: jose would otherwise import the raw secret on every call.
const keys = new Map<string, Promise<CryptoKey>>();

function signingKey(env: Env): Promise<CryptoKey> {
  const secret = env.JWT_SECRET;
  if (!secret) {
    // The log line names the secret; the client only sees a generic 500.
    const error = new Error("JWT_SECRET is not set: run `wrangler secret put JWT_SECRET`");
    log.error("missing secret JWT_SECRET", error);
    throw error;
  }
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    keys.set(secret, key);
  }
  return key;
}

/** A JWT of ours: HS256 under JWT_SECRET, our issuer, `sub` the user, expiring in `ttlSeconds`. */
async function sign(env: Env, claims: Record<string, string>, userId: string, ttlSeconds: number): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: ALGORITHM })
    .setSubject(userId)
    .setIssuer(ISSUER)
    .setIssuedAt()
    .setExpirationTime(`${ttlSeconds}s`)
    .sign(await signingKey(env));
}

export async function signToken(env: Env, claims: TokenClaims): Promise<string> {
  const ttl = claims.type === "access" ? ACCESS_TOKEN_TTL_SECONDS : REFRESH_TOKEN_TTL_SECONDS;
  return sign(env, { typ: claims.type, fam: claims.familyId, jti: claims.tokenId }, claims.userId, ttl);
}

/** Verifies signature, algorithm, expiry and token type; any failure is a 401. */
export async function verifyToken(env: Env, token: string, expected: TokenType): Promise<TokenClaims> {
  const key = await signingKey(env);
  try {
    const { payload } = await jwtVerify(token, key, { algorithms: [ALGORITHM], issuer: ISSUER });
    if (payload.typ !== expected || typeof payload.sub !== "string" || typeof payload.jti !== "string" || typeof payload.fam !== "string") {
      throw new ApiError("unauthorized", `Not a valid ${expected} token.`);
    }
    return { userId: payload.sub, type: expected, tokenId: payload.jti, familyId: payload.fam };
  } catch (error) {
    if (error instanceof ApiError) throw error;
    const message = error instanceof joseErrors.JWTExpired ? "Token has expired." : `Not a valid ${expected} token.`;
    throw new ApiError("unauthorized", message);
  }
}

export const STREAM_TICKET_TTL_SECONDS = 60;
const STREAM_TICKET_TYPE = "stream_ticket";

/**
 * A read-only ticket for one conversation's stream, for clients that cannot send an
 * Authorization header (a browser's EventSource). Its own `typ`, so no other route accepts it.
 */
export const signStreamTicket = (env: Env, userId: string, conversationId: string) =>
  sign(env, { typ: STREAM_TICKET_TYPE, cnv: conversationId }, userId, STREAM_TICKET_TTL_SECONDS);

/** The user a stream ticket was issued to, if it is valid for `conversationId`; otherwise a 401. */
export async function verifyStreamTicket(env: Env, ticket: string, conversationId: string): Promise<string> {
  const key = await signingKey(env);
  try {
    const { payload } = await jwtVerify(ticket, key, { algorithms: [ALGORITHM], issuer: ISSUER });
    if (payload.typ === STREAM_TICKET_TYPE && payload.cnv === conversationId && typeof payload.sub === "string") return payload.sub;
  } catch (error) {
    if (error instanceof joseErrors.JWTExpired) throw new ApiError("unauthorized", "The stream ticket has expired; ask for a new one.");
  }
  throw new ApiError("unauthorized", "Not a valid stream ticket for this conversation.");
}

/** HMAC-SHA256 under the server secret, for values that must be unguessable but reproducible. */
export async function hmacSha256(env: Env, message: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign("HMAC", await signingKey(env), new TextEncoder().encode(message)));
}
