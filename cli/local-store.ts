/** The table that `tollgate demo` / `simulate` fill in the local store and `tollgate audit` reads. */
export const TABLE_NAME = 'tollgate';
