const LEET: Record<string, string> = { "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", $: "s", "!": "i" };

/**
 * The form a password is compared in against the common-password list: lower case, trailing
 * digits and symbols dropped, look-alike digits read as letters. `Passw0rd!` and `password123`
 * both become `password`. scripts/build-common-passwords.mjs builds the list with it too.
 */
export const commonPasswordForm = (password: string) =>
  password
    .toLowerCase()
    .replace(/[^a-z]+$/, "")
    .replace(/[013457@$!]/g, (c) => LEET[c]!);
