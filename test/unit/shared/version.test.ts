import t from 'tap';
import { VERSION } from '../../../lib/shared/version.js';
t.match(VERSION, /^\d+\.\d+\.\d+/);
