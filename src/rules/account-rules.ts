import { z } from "@hono/zod-openapi";
import { commonPasswordForm } from "../lib/common-password-form";
import commonPasswords from "../lib/common-passwords.json";
import { wellFormedText } from "./text-rules";

/* Rules about accounts that the auth and user routes share. */

export const EmailSchema = z
  .string()
  .trim()
  .toLowerCase()
  .max(254)
  .pipe(z.email({ message: "Enter a valid email address." }))
  .openapi({ example: "ada@example.com" });

const COMMON_PASSWORDS = new Set<string>(commonPasswords);

export const NewPasswordSchema = wellFormedText()
  .min(8, "Password must be at least 8 characters.")
  .max(128, "Password must be at most 128 characters.")
  .refine((p) => p.trim().length > 0, "Password cannot be only spaces.")
  .refine((p) => !/^\d+$/.test(p), "Password cannot be entirely numeric.")
  .refine((p) => new Set(p.toLowerCase()).size > 2, "Password needs more than two different characters.")
  .refine((p) => !COMMON_PASSWORDS.has(commonPasswordForm(p)), "Password is too common.")
  .openapi({ example: "correct horse battery staple" });

/** A password being checked, not set: only the encoding rules, so a lone surrogate is a 400, not a hash of U+FFFD. */
export const PasswordSchema = wellFormedText().max(1024);

export const NameSchema = wellFormedText().trim().max(150);
